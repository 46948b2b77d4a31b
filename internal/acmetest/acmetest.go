package acmetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idPeAcmeIdentifier is the TLS-ALPN-01 certificate extension (RFC 8737).
var idPeAcmeIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// Server is the ACME CA. Create with New; URL()+"/directory" is the
// directory URL; Client() trusts its HTTPS endpoint.
type Server struct {
	srv    *httptest.Server
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	// CAPEM is the issuing CA certificate (PEM).
	CAPEM []byte

	mu       sync.Mutex
	nonces   map[string]bool
	accounts map[string]*ecdsa.PublicKey // account URL -> key
	orders   map[string]*order
	authzs   map[string]*authz
	targets  map[string]string // domain -> host:port validated
	next     int
	issued   int
}

type order struct {
	id, status, cert string
	domains          []string
	authz            []string
	acct             string
	der              [][]byte
}

type authz struct {
	id, domain, status, token, acct string
	order                           *order
}

// New starts the CA; Close it (t.Cleanup).
func New() (*Server, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	s := &Server{caKey: key, caCert: cert, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		nonces: map[string]bool{}, accounts: map[string]*ecdsa.PublicKey{}, orders: map[string]*order{},
		authzs: map[string]*authz{}, targets: map[string]string{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s, nil
}

// URL is the CA's base URL; the directory is URL()+"/directory".
func (s *Server) URL() string { return s.srv.URL }

// DirectoryURL is the ACME directory URL.
func (s *Server) DirectoryURL() string { return s.srv.URL + "/directory" }

// Client trusts the CA's own HTTPS endpoint.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// ServerCertPEM is the HTTPS certificate of the ACME endpoint itself (for a
// process that must trust it through SSL_CERT_FILE).
func (s *Server) ServerCertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close stops the CA.
func (s *Server) Close() { s.srv.Close() }

// Target makes TLS-ALPN-01 validation of domain dial addr.
func (s *Server) Target(domain, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets[domain] = addr
}

// Issued counts certificates issued.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

func (s *Server) newID() string { s.next++; return strconv.Itoa(s.next) }

func (s *Server) nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	n := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.nonces[n] = true
	s.mu.Unlock()
	return n
}

// problem writes an RFC 8555 §6.7 error.
func (s *Server) problem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Replay-Nonce", s.nonce())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"type": "urn:ietf:params:acme:error:" + typ, "detail": detail})
}

func (s *Server) reply(w http.ResponseWriter, status int, location string, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Replay-Nonce", s.nonce())
	if location != "" {
		w.Header().Set("Location", location)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/directory":
		s.reply(w, http.StatusOK, "", map[string]any{"newNonce": s.srv.URL + "/new-nonce",
			"newAccount": s.srv.URL + "/new-account", "newOrder": s.srv.URL + "/new-order",
			"revokeCert": s.srv.URL + "/revoke", "keyChange": s.srv.URL + "/key-change",
			"meta": map[string]string{"termsOfService": s.srv.URL + "/terms"}})
		return
	case p == "/new-nonce":
		w.Header().Set("Replay-Nonce", s.nonce())
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	case r.Method != http.MethodPost:
		s.problem(w, http.StatusMethodNotAllowed, "malformed", "POST required")
		return
	}
	req, err := s.verify(r)
	if err != nil {
		typ := "malformed"
		if errors.Is(err, errBadNonce) {
			typ = "badNonce"
		}
		s.problem(w, http.StatusBadRequest, typ, err.Error())
		return
	}
	s.route(w, p, req)
}

func (s *Server) route(w http.ResponseWriter, p string, req *jwsRequest) {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	id := ""
	if len(seg) == 2 {
		id = seg[1]
	}
	switch seg[0] {
	case "new-account":
		s.newAccount(w, req)
	case "new-order":
		s.newOrder(w, req)
	case "authz":
		s.authorization(w, req, id)
	case "chal":
		s.challenge(w, req, id)
	case "order":
		s.getOrder(w, req, id)
	case "finalize":
		s.finalize(w, req, id)
	case "cert":
		s.certificate(w, req, id)
	default:
		s.problem(w, http.StatusNotFound, "malformed", "no such resource")
	}
}

var errBadNonce = errors.New("bad nonce")

// jwsRequest is a verified request: the signer's account (or new key) and
// the payload.
type jwsRequest struct {
	acct    string // account URL (kid), empty for new-account
	key     *ecdsa.PublicKey
	jwk     map[string]string
	payload []byte
}

// verify checks the flattened JWS (RFC 8555 §6.2): ES256 over
// protected.payload, a nonce this server issued (used once), url equal to
// the request URL, and either a jwk (new-account only) or a known kid.
func (s *Server) verify(r *http.Request) (*jwsRequest, error) {
	var env struct{ Protected, Payload, Signature string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&env); err != nil {
		return nil, fmt.Errorf("JWS: %v", err)
	}
	ph, err := base64.RawURLEncoding.DecodeString(env.Protected)
	if err != nil {
		return nil, errors.New("protected header encoding")
	}
	var h struct {
		Alg, Nonce, URL, Kid string
		JWK                  map[string]string
	}
	if err := json.Unmarshal(ph, &h); err != nil || h.Alg != "ES256" {
		return nil, errors.New("protected header: want alg ES256")
	}
	s.mu.Lock()
	fresh := s.nonces[h.Nonce]
	delete(s.nonces, h.Nonce)
	s.mu.Unlock()
	if !fresh {
		return nil, errBadNonce
	}
	if h.URL != s.srv.URL+r.URL.Path {
		return nil, fmt.Errorf("url %q does not match the request", h.URL)
	}
	req := &jwsRequest{jwk: h.JWK}
	switch {
	case h.JWK != nil && strings.HasSuffix(r.URL.Path, "/new-account"):
		if req.key, err = ecKey(h.JWK); err != nil {
			return nil, err
		}
	case h.Kid != "":
		s.mu.Lock()
		req.key, req.acct = s.accounts[h.Kid], h.Kid
		s.mu.Unlock()
		if req.key == nil {
			return nil, errors.New("unknown account")
		}
	default:
		return nil, errors.New("want jwk on new-account, kid elsewhere")
	}
	sig, err := base64.RawURLEncoding.DecodeString(env.Signature)
	if err != nil || len(sig) != 64 {
		return nil, errors.New("signature encoding")
	}
	dg := sha256.Sum256([]byte(env.Protected + "." + env.Payload))
	if !ecdsa.Verify(req.key, dg[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("signature does not verify")
	}
	if req.payload, err = base64.RawURLEncoding.DecodeString(env.Payload); err != nil {
		return nil, errors.New("payload encoding")
	}
	return req, nil
}

func ecKey(jwk map[string]string) (*ecdsa.PublicKey, error) {
	if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
		return nil, errors.New("jwk: want EC P-256")
	}
	x, err1 := base64.RawURLEncoding.DecodeString(jwk["x"])
	y, err2 := base64.RawURLEncoding.DecodeString(jwk["y"])
	if err1 != nil || err2 != nil {
		return nil, errors.New("jwk coordinates")
	}
	k := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	if !k.Curve.IsOnCurve(k.X, k.Y) { //nolint:staticcheck // test double: on-curve check of a client key
		return nil, errors.New("jwk: point not on curve")
	}
	return k, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an EC P-256 key.
func thumbprint(k *ecdsa.PublicKey) string {
	pad := func(b *big.Int) string {
		out := make([]byte, 32)
		b.FillBytes(out)
		return base64.RawURLEncoding.EncodeToString(out)
	}
	j := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, pad(k.X), pad(k.Y))
	h := sha256.Sum256([]byte(j))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *Server) newAccount(w http.ResponseWriter, req *jwsRequest) {
	var p struct {
		TermsOfServiceAgreed bool `json:"termsOfServiceAgreed"`
	}
	if json.Unmarshal(req.payload, &p) != nil || !p.TermsOfServiceAgreed {
		s.problem(w, http.StatusBadRequest, "malformed", "termsOfServiceAgreed required")
		return
	}
	s.mu.Lock()
	u := s.srv.URL + "/acct/" + s.newID()
	s.accounts[u] = req.key
	s.mu.Unlock()
	s.reply(w, http.StatusCreated, u, map[string]any{"status": "valid", "orders": u + "/orders"})
}

func (s *Server) newOrder(w http.ResponseWriter, req *jwsRequest) {
	var p struct {
		Identifiers []struct{ Type, Value string }
	}
	if json.Unmarshal(req.payload, &p) != nil || len(p.Identifiers) == 0 {
		s.problem(w, http.StatusBadRequest, "malformed", "identifiers required")
		return
	}
	s.mu.Lock()
	o := &order{id: s.newID(), status: "pending", acct: req.acct}
	for _, id := range p.Identifiers {
		if id.Type != "dns" {
			s.mu.Unlock()
			s.problem(w, http.StatusBadRequest, "rejectedIdentifier", "dns identifiers only")
			return
		}
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		z := &authz{id: s.newID(), domain: id.Value, status: "pending", acct: req.acct, order: o,
			token: base64.RawURLEncoding.EncodeToString(tok)}
		s.authzs[z.id] = z
		o.domains = append(o.domains, id.Value)
		o.authz = append(o.authz, s.srv.URL+"/authz/"+z.id)
	}
	s.orders[o.id] = o
	body := s.orderJSON(o)
	s.mu.Unlock()
	s.reply(w, http.StatusCreated, s.srv.URL+"/order/"+o.id, body)
}

// orderJSON renders o; call with mu held.
func (s *Server) orderJSON(o *order) map[string]any {
	ids := make([]map[string]string, len(o.domains))
	for i, d := range o.domains {
		ids[i] = map[string]string{"type": "dns", "value": d}
	}
	m := map[string]any{"status": o.status, "identifiers": ids, "authorizations": o.authz,
		"finalize": s.srv.URL + "/finalize/" + o.id, "expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if o.cert != "" {
		m["certificate"] = o.cert
	}
	return m
}

// authzJSON renders z; call with mu held.
func (s *Server) authzJSON(z *authz) map[string]any {
	return map[string]any{"status": z.status, "identifier": map[string]string{"type": "dns", "value": z.domain},
		"expires": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"challenges": []map[string]string{{"type": "tls-alpn-01", "url": s.srv.URL + "/chal/" + z.id,
			"token": z.token, "status": z.status}}}
}

func (s *Server) authorization(w http.ResponseWriter, req *jwsRequest, id string) {
	s.mu.Lock()
	z := s.authzs[id]
	if z == nil || z.acct != req.acct {
		s.mu.Unlock()
		s.problem(w, http.StatusNotFound, "malformed", "no such authorization")
		return
	}
	var p struct{ Status string }
	if len(req.payload) > 0 && json.Unmarshal(req.payload, &p) == nil && p.Status == "deactivated" {
		z.status = "deactivated"
	}
	body := s.authzJSON(z)
	s.mu.Unlock()
	s.reply(w, http.StatusOK, "", body)
}

// challenge validates TLS-ALPN-01 (RFC 8737 §3) by dialling the target.
func (s *Server) challenge(w http.ResponseWriter, req *jwsRequest, id string) {
	s.mu.Lock()
	z := s.authzs[id]
	var addr string
	if z != nil {
		addr = s.targets[z.domain]
	}
	s.mu.Unlock()
	if z == nil || z.acct != req.acct {
		s.problem(w, http.StatusNotFound, "malformed", "no such challenge")
		return
	}
	keyAuth := z.token + "." + thumbprint(req.key)
	err := validateALPN(addr, z.domain, keyAuth)
	s.mu.Lock()
	z.status = "valid"
	if err != nil {
		z.status = "invalid"
	} else if allValid(s, z.order) {
		z.order.status = "ready"
	}
	body := map[string]string{"type": "tls-alpn-01", "url": s.srv.URL + "/chal/" + id, "token": z.token, "status": z.status}
	s.mu.Unlock()
	s.reply(w, http.StatusOK, "", body)
}

func allValid(s *Server, o *order) bool {
	for _, u := range o.authz {
		if s.authzs[u[strings.LastIndex(u, "/")+1:]].status != "valid" {
			return false
		}
	}
	return true
}

func validateALPN(addr, domain, keyAuth string) error {
	if addr == "" {
		return errors.New("no target for domain")
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: domain, NextProtos: []string{"acme-tls/1"},
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // RFC 8737: the cert is self-signed
	if err != nil {
		return err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != "acme-tls/1" || len(st.PeerCertificates) == 0 {
		return errors.New("acme-tls/1 not negotiated")
	}
	leaf := st.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != domain {
		return errors.New("challenge certificate names the wrong domain")
	}
	want := sha256.Sum256([]byte(keyAuth))
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(idPeAcmeIdentifier) {
			var got []byte
			if _, err := asn1.Unmarshal(ext.Value, &got); err != nil || !ext.Critical || !bytes.Equal(got, want[:]) {
				return errors.New("acmeIdentifier mismatch")
			}
			return nil
		}
	}
	return errors.New("no acmeIdentifier extension")
}

func (s *Server) getOrder(w http.ResponseWriter, req *jwsRequest, id string) {
	s.mu.Lock()
	o := s.orders[id]
	if o == nil || o.acct != req.acct {
		s.mu.Unlock()
		s.problem(w, http.StatusNotFound, "malformed", "no such order")
		return
	}
	body := s.orderJSON(o)
	s.mu.Unlock()
	s.reply(w, http.StatusOK, s.srv.URL+"/order/"+id, body)
}

// finalize issues the certificate for a ready order's CSR (RFC 8555 §7.4).
func (s *Server) finalize(w http.ResponseWriter, req *jwsRequest, id string) {
	var p struct{ CSR string }
	_ = json.Unmarshal(req.payload, &p)
	raw, err := base64.RawURLEncoding.DecodeString(p.CSR)
	var csr *x509.CertificateRequest
	if err == nil {
		csr, err = x509.ParseCertificateRequest(raw)
	}
	if err == nil {
		err = csr.CheckSignature()
	}
	status, typ, body, perr := s.issue(req, id, csr, err)
	if perr != "" {
		s.problem(w, status, typ, perr)
		return
	}
	s.reply(w, http.StatusOK, s.srv.URL+"/order/"+id, body)
}

// issue signs the order's certificate; it returns a problem (status, type,
// detail) or the order body.
func (s *Server) issue(req *jwsRequest, id string, csr *x509.CertificateRequest, csrErr error) (int, string, map[string]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[id]
	switch {
	case o == nil || o.acct != req.acct:
		return http.StatusNotFound, "malformed", nil, "no such order"
	case o.status != "ready":
		return http.StatusForbidden, "orderNotReady", nil, "order is " + o.status
	case csrErr != nil || !sameNames(csr.DNSNames, o.domains):
		return http.StatusBadRequest, "badCSR", nil, "CSR invalid or names differ from the order"
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + s.next)), Subject: pkix.Name{CommonName: o.domains[0]},
		DNSNames: o.domains, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	s.next++
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		return http.StatusInternalServerError, "serverInternal", nil, err.Error()
	}
	o.der = [][]byte{der, s.caCert.Raw}
	o.status, o.cert = "valid", s.srv.URL+"/cert/"+o.id
	s.issued++
	return 0, "", s.orderJSON(o), ""
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

func (s *Server) certificate(w http.ResponseWriter, req *jwsRequest, id string) {
	s.mu.Lock()
	o := s.orders[id]
	var chain [][]byte
	if o != nil && o.acct == req.acct {
		chain = o.der
	}
	s.mu.Unlock()
	if chain == nil {
		s.problem(w, http.StatusNotFound, "malformed", "no such certificate")
		return
	}
	var b bytes.Buffer
	for _, der := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Set("Replay-Nonce", s.nonce())
	_, _ = w.Write(b.Bytes())
}
