// Package cx implements IICP-CX Tier 1 end-to-end payload confidentiality
// (iicp-confidentiality.md, S.16 v0.3.2-draft): the node's X25519 key ring,
// the provider side that opens an `iicp_conf` envelope in a POST /v1/task
// body into a plain CALL for the engine, the consumer side that seals a CALL
// to a node's advertised `cx_public_key`, and the negotiated response
// encryption of §5a.3 (`cx_response_encryption: "required"` →
// `iicp_conf_resp`).
//
// The construction (§5, byte-compatible with the public IICP SDKs):
//
//	shared  = X25519(ephemeral_priv, node_pub)            // kem_ciphertext = ephemeral_pub
//	key     = HKDF-SHA256(ikm=shared, salt=nonce, info="IICP-CX-v1"||task_id||intent, L=32)
//	aad     = task_id || "|" || intent
//	body    = AES-256-GCM(key, nonce, payload_json, aad)  // ciphertext || 16-byte tag
//
//	resp_key = HKDF-SHA256(ikm=shared, salt=resp_nonce, info="IICP-CX-RESP-v1"||task_id, L=32)
//	resp_aad = task_id || "|resp"
//
// Only the CALL's `payload` is encrypted; task_id and intent travel in clear
// (the directory and relays route on them) and are bound to the ciphertext
// through the AAD and the HKDF info. See docs/cx.md for the envelope, the
// key file, rotation, and where the SDKs deviate from the spec text.
//
// Failures never carry detail an attacker could use: in the Tier 1 error
// model every envelope failure is IICP-E050 with one fixed message (§6
// "Implementation status"); the granular E060–E064 target model is an option.
// Payload bytes, plaintext and key material never reach a log or an error.
//
// cx imports the standard library, wire and internal/paths (atomic 0600
// writes) only. It knows nothing of HTTP or the engine: the HTTP bridge calls
// Provider.Open before decoding the CALL and Opened.Respond to render the
// RESPONSE; the client calls Prepare before POSTing and ResponseOpener.Open
// on what comes back.
package cx
