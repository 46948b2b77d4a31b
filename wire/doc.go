// Package wire owns the IICP vocabulary: message types, validation, the error
// catalogue, the JSON and CBOR codecs (string-keyed for HTTP, integer-keyed for
// native frames) and the 12-byte binary frame.
//
// wire is pure: it must not import net, net/http, libp2p, log/slog, or read the
// clock. It encodes and decodes on byte slices and io.Reader/io.Writer only;
// every limit is a named constant and every decoder checks sizes before it
// allocates.
package wire
