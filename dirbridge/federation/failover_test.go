package federation

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDIR_FED_05_06_FailoverClient: 307s are followed with method and body
// up to 3 hops and refused beyond (DIR-FED-05/06); a dead or 503 directory
// fails over to the next configured one.
func TestDIR_FED_05_06_FailoverClient(t *testing.T) {
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
	}))
	defer final.Close()
	// chain(n) redirects n times before reaching final.
	var hops atomic.Int64
	var chain *httptest.Server
	chain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		hops.Add(1)
		loc := final.URL + r.URL.Path
		if n > 1 {
			loc = chain.URL + r.URL.Path + "?n=" + strconv.Itoa(n-1)
		}
		w.Header().Set("Location", loc)
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer chain.Close()
	c, err := NewFailoverClient([]string{chain.URL}, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(chain.URL+"/v1/register?n=3", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatalf("3 redirects must be followed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `POST /v1/register {"a":1}` {
		t.Fatalf("redirected request arrived as %q", b)
	}
	if _, err := c.Post(chain.URL+"/v1/register?n=4", "application/json", strings.NewReader(`{}`)); !errors.Is(err, ErrTooManyRedirects) {
		t.Fatalf("4 redirects: %v, want ErrTooManyRedirects", err)
	}

	// Failover: the seed answers 503, a second endpoint is dead, the third answers.
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer busy.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	c2, _ := NewFailoverClient([]string{busy.URL, deadURL, final.URL}, nil, 5*time.Second)
	resp, err = c2.Post(busy.URL+"/v1/discover?intent=x", "application/json", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST /v1/discover?intent=x body" {
		t.Fatalf("failover answer %q", b)
	}
}
