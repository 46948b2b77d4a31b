// Package sdnotify implements the few lines of the systemd notify protocol
// meshnode needs (sd_notify(3)): one datagram per state change to the
// unixgram socket named by $NOTIFY_SOCKET, so a Type=notify unit knows when
// the node is listening and registered (READY=1) and when it is stopping
// (STOPPING=1). Without $NOTIFY_SOCKET every call is a no-op.
//
// sdnotify imports only the standard library and no module package.
package sdnotify
