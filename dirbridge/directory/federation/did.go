package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DIDDocument is the subset of a W3C DID document IICP uses (S.13 §4).
type DIDDocument struct {
	Context            []string             `json:"@context"`
	ID                 string               `json:"id"`
	VerificationMethod []VerificationMethod `json:"verificationMethod"`
	AssertionMethod    []string             `json:"assertionMethod,omitempty"`
	Service            []DIDService         `json:"service,omitempty"`
}

// VerificationMethod is one key of a DID document.
type VerificationMethod struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	Controller   string `json:"controller"`
	PublicKeyJwk *JWK   `json:"publicKeyJwk,omitempty"`
}

// JWK is an OKP JSON Web Key (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
}

// DIDService is one service entry.
type DIDService struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ServiceEndpoint string `json:"serviceEndpoint"`
}

// maxDIDDocBytes bounds a fetched DID document (a real one is < 2 KiB).
const maxDIDDocBytes = 64 << 10

// NewDIDDocument builds the document for did with one Ed25519 key and the
// given services (S.13 §4 layout).
func NewDIDDocument(did string, pub ed25519.PublicKey, services ...DIDService) DIDDocument {
	kid := did + "#key-1"
	return DIDDocument{
		Context: []string{"https://www.w3.org/ns/did/v1"},
		ID:      did,
		VerificationMethod: []VerificationMethod{{
			ID: kid, Type: "JsonWebKey2020", Controller: did,
			PublicKeyJwk: &JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub)},
		}},
		AssertionMethod: []string{kid},
		Service:         services,
	}
}

// Errors of DID handling; the seed maps them to IICP-E040 / IICP-E041.
var (
	ErrDIDUnresolvable = errors.New("did does not resolve to a DID document")
	ErrDIDNoEd25519    = errors.New("DID document has no Ed25519 verification method")
)

// Ed25519Key returns the first Ed25519 key of doc (S.13 §6.5 step 2).
func (doc *DIDDocument) Ed25519Key() (ed25519.PublicKey, error) {
	for _, vm := range doc.VerificationMethod {
		if vm.PublicKeyJwk == nil || vm.PublicKeyJwk.Kty != "OKP" || vm.PublicKeyJwk.Crv != "Ed25519" {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(vm.PublicKeyJwk.X)
		if err != nil || len(b) != ed25519.PublicKeySize {
			continue
		}
		return ed25519.PublicKey(b), nil
	}
	return nil, ErrDIDNoEd25519
}

// DIDWebURL maps a did:web identifier to its document URL (W3C did:web):
// did:web:host%3Aport:path:seg → https://host:port/path/seg/did.json, and a
// bare domain to /.well-known/did.json. insecure selects http (loopback
// development only).
func DIDWebURL(did string, insecure bool) (string, error) {
	rest, ok := strings.CutPrefix(did, "did:web:")
	if !ok || rest == "" {
		return "", fmt.Errorf("%w: not a did:web identifier", ErrDIDUnresolvable)
	}
	parts := strings.Split(rest, ":")
	host, err := url.PathUnescape(parts[0])
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@") {
		return "", fmt.Errorf("%w: bad did:web host", ErrDIDUnresolvable)
	}
	scheme := "https"
	if insecure {
		scheme = "http"
	}
	path := "/.well-known/did.json"
	if len(parts) > 1 {
		segs := make([]string, 0, len(parts)-1)
		for _, p := range parts[1:] {
			s, err := url.PathUnescape(p)
			if err != nil || s == "" || strings.ContainsAny(s, "/?#") || s == ".." {
				return "", fmt.Errorf("%w: bad did:web path", ErrDIDUnresolvable)
			}
			segs = append(segs, url.PathEscape(s))
		}
		path = "/" + strings.Join(segs, "/") + "/did.json"
	}
	return scheme + "://" + host + path, nil
}

// DIDWebFor is the did:web identifier of a base URL's host (port encoded
// as %3A), the identity a directory at that URL publishes.
func DIDWebFor(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("directory URL %q has no host", baseURL)
	}
	return "did:web:" + strings.ReplaceAll(u.Host, ":", "%3A"), nil
}

// ResolveDID fetches and decodes the DID document for did and checks that
// its id is did (a document for another identity proves nothing).
func ResolveDID(ctx context.Context, client *http.Client, did string, insecure bool) (*DIDDocument, error) {
	u, err := DIDWebURL(did, insecure)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDIDUnresolvable, err)
	}
	req.Header.Set("Accept", "application/did+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching document failed", ErrDIDUnresolvable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: document fetch returned %d", ErrDIDUnresolvable, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDIDDocBytes+1))
	if err != nil || len(body) > maxDIDDocBytes {
		return nil, fmt.Errorf("%w: document unreadable or too large", ErrDIDUnresolvable)
	}
	var doc DIDDocument
	if err := json.Unmarshal(body, &doc); err != nil || doc.ID != did {
		return nil, fmt.Errorf("%w: document invalid or for another id", ErrDIDUnresolvable)
	}
	return &doc, nil
}
