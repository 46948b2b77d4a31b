package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gocall:", err)
		os.Exit(1)
	}
}

// run parses args, runs one chat task and prints the answer to out (and
// which node served it to info).
func run(ctx context.Context, args []string, out, info io.Writer) error {
	fs := flag.NewFlagSet("gocall", flag.ContinueOnError)
	fs.SetOutput(info)
	directory := fs.String("directory", envOr("MESHNODE_DIRECTORY", "http://127.0.0.1:8010"), "directory URL ($MESHNODE_DIRECTORY)")
	intent := fs.String("intent", wire.IntentChat, "intent URN")
	timeout := fs.Duration("timeout", time.Minute, "task timeout")
	plaintext := fs.Bool("allow-plaintext", false, "allow nodes without an IICP-CX key (debugging only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	prompt := strings.Join(fs.Args(), " ")
	if prompt == "" {
		return errors.New("no prompt: gocall [-directory URL] \"your question\"")
	}

	// One Router per program: it keeps a circuit breaker per node.
	r, err := route.ForAgent(ctx, route.AgentConfig{Directory: *directory,
		NodeToken: os.Getenv("MESHNODE_NODE_TOKEN"), UserAgent: "meshnode-gocall-example"})
	if err != nil {
		return err
	}
	call, err := route.NewTask(*intent, map[string]any{
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	}, *timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout+10*time.Second)
	defer cancel()
	res, err := r.Call(ctx, call, route.Query{AllowPlaintext: *plaintext})
	if err != nil {
		// A refusal is an error: *wire.Error carries the IICP code
		// (unauthorized, no_available_node, task_timeout…).
		var werr *wire.Error
		if errors.As(err, &werr) && werr.Code == wire.CodeUnauthorized {
			return fmt.Errorf("%w (set MESHNODE_NODE_TOKEN to a registered node's token)", err)
		}
		return err
	}
	fmt.Fprintf(info, "served by node %s over %s (%d attempt(s))\n", res.NodeID, res.Path, res.Attempts)
	fmt.Fprintln(out, answer(res.Response.Result))
	return nil
}

// answer is the chat text of a result, or the result's JSON.
func answer(result json.RawMessage) string {
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(result, &r) == nil && len(r.Choices) > 0 {
		return r.Choices[0].Message.Content
	}
	return string(result)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
