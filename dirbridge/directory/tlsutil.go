package directory

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"time"

	"github.com/meshnode/meshnode/internal/tlsutil"
)

// Generated certificate files in the state dir.
const (
	certFileName = "directory-cert.pem"
	keyFileName  = "directory-key.pem"
	// certLifetime trades rotation churn against exposure of a stolen key.
	certLifetime = 365 * 24 * time.Hour
)

// SelfSignedCertPath is where New keeps the generated certificate, so
// clients (and tests) can pin it.
func SelfSignedCertPath(stateDir string) string { return filepath.Join(stateDir, certFileName) }

// loadOrCreateSelfSigned returns the persisted self-signed certificate,
// generating it when missing, unloadable or expired. It is its own CA so
// clients can pin it as a root.
func loadOrCreateSelfSigned(dir string, hosts []string, now time.Time) (tls.Certificate, error) {
	c, err := tlsutil.SelfSigned{Dir: dir, CertFile: certFileName, KeyFile: keyFileName,
		CommonName: "meshnode directory", Hosts: hosts, Validity: certLifetime, CA: true}.LoadOrCreate(now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("directory: %w", err)
	}
	return c, nil
}
