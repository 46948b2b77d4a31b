package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// duplicateWindow: a second signal this soon after the first is taken as
// the same request delivered twice (timeout(1) and some supervisors signal
// both the process and its process group), not as "exit now".
const duplicateWindow = 250 * time.Millisecond

// signalContext ends the returned context on the first SIGINT/SIGTERM,
// which starts a bounded graceful shutdown; a second signal exits at once
// with exitInterrupted.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
		case <-done:
			return
		}
		cancel()
		first := time.Now()
		for {
			select {
			case <-ch:
				if time.Since(first) < duplicateWindow {
					continue
				}
				fmt.Fprintln(stderr, "meshnode: second signal, exiting now")
				os.Exit(exitInterrupted)
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
