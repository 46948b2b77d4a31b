package httperr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
)

// OpaqueError shows a fixed message but keeps the cause for errors.Is/As.
// Never print the cause: that is the text this type exists to hide.
type OpaqueError struct {
	msg   string
	cause error
}

func (e *OpaqueError) Error() string { return e.msg }
func (e *OpaqueError) Unwrap() error { return e.cause }

// Wrap returns err behind the fixed message msg (nil for a nil err). msg
// must be a constant or built only from values the caller owns.
func Wrap(msg string, err error) error {
	if err == nil {
		return nil
	}
	return &OpaqueError{msg: msg, cause: err}
}

// Transport returns a transport failure talking to peer ("directory",
// "node", "backend") as an *OpaqueError whose text names only the class
// of the failure (Describe); nil for a nil err.
func Transport(peer string, err error) error {
	if err == nil {
		return nil
	}
	return Wrap(Describe(peer, err), err)
}

// Describe names the class of a transport failure talking to peer. Every
// result is a fixed string apart from peer.
func Describe(peer string, err error) string {
	var (
		ne   net.Error
		oe   *net.OpError
		de   *net.DNSError
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		hne  x509.HostnameError
		rhe  tls.RecordHeaderError
		inve x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "request to " + peer + " canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "request to " + peer + " timed out"
	case errors.As(err, &de):
		return "cannot resolve " + peer + " host"
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &inve):
		return peer + " TLS certificate not trusted"
	case errors.As(err, &rhe):
		return peer + " did not answer with TLS"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "cannot connect to " + peer
	case errors.As(err, &ne) && ne.Timeout():
		return peer + " I/O timed out"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return peer + " closed the connection early"
	default:
		return peer + " transport failed"
	}
}
