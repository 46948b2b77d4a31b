// Package tlsutil keeps the self-signed server certificates meshnode
// generates when an operator gives none: the node's HTTP bridge
// (dirbridge/httpapi) and the directory server (dirbridge/directory) both
// keep one in the state directory, reuse it across restarts so clients can
// pin it, and regenerate it when it is missing, does not load, or is within
// its renewal window of expiry.
//
// tlsutil imports the standard library and internal/paths (atomic 0600
// writes) only; it knows nothing of the servers that use it.
package tlsutil
