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
	bootstrap := fs.String("bootstrap", os.Getenv("MESHNODE_BOOTSTRAP"),
		"reach the mesh through this meshnode node instead: its multiaddr ending in /p2p/<peer id> ($MESHNODE_BOOTSTRAP)")
	stream := fs.Bool("stream", false, "print the answer's tokens as they arrive")
	intent := fs.String("intent", wire.IntentChat, "intent URN")
	model := fs.String("model", "", "pin the model (default: any)")
	timeout := fs.Duration("timeout", time.Minute, "task timeout")
	plaintext := fs.Bool("allow-plaintext", false, "allow nodes without an IICP-CX key (debugging only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	prompt := strings.Join(fs.Args(), " ")
	if prompt == "" {
		return errors.New("no prompt: gocall [-directory URL] \"your question\"")
	}

	// One Router per program: it keeps a circuit breaker per node. With a
	// bootstrap peer it also holds a libp2p host, released by Close.
	cfg := route.AgentConfig{Directory: *directory, NodeToken: os.Getenv("MESHNODE_NODE_TOKEN"), UserAgent: "meshnode-gocall-example"}
	if *bootstrap != "" {
		cfg.Directory, cfg.Bootstrap = "", *bootstrap
	}
	r, err := route.ForAgent(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	call, err := route.NewTask(*intent, map[string]any{
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	}, *timeout)
	if err != nil {
		return err
	}
	call.Model = *model
	ctx, cancel := context.WithTimeout(ctx, *timeout+10*time.Second)
	defer cancel()
	q := route.Query{AllowPlaintext: *plaintext}
	var res *route.Result
	if *stream {
		res, err = r.CallStream(ctx, call, q, func(chunk json.RawMessage) error {
			_, werr := io.WriteString(out, delta(chunk))
			return werr
		})
	} else {
		res, err = r.Call(ctx, call, q)
	}
	if err != nil {
		// A refusal is an error: *wire.Error carries the IICP code
		// (unauthorized, no_available_node, task_timeout…).
		var werr *wire.Error
		if errors.As(err, &werr) && werr.Code == wire.CodeUnauthorized {
			return fmt.Errorf("%w (set MESHNODE_NODE_TOKEN to a registered node's token, or with -bootstrap to that node's: `meshnode token`)", err)
		}
		return err
	}
	served := res.Response.NodeID // a gateway names the node that served
	if served == "" {
		served = res.NodeID
	}
	fmt.Fprintf(info, "served by node %s over %s (%d attempt(s))\n", served, res.Path, res.Attempts)
	if *stream {
		// Streamed: the chunks were the answer; a backend that cannot
		// stream gives it whole in the final result.
		if len(res.Response.Result) > 0 && string(res.Response.Result) != "null" {
			fmt.Fprint(out, answer(res.Response.Result))
		}
		fmt.Fprintln(out)
		return nil
	}
	fmt.Fprintln(out, answer(res.Response.Result))
	return nil
}

// delta is the text of one streamed chunk (chat or completion).
func delta(chunk json.RawMessage) string {
	var c struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
			Text string `json:"text"`
		} `json:"choices"`
	}
	if json.Unmarshal(chunk, &c) != nil {
		return ""
	}
	var b strings.Builder
	for _, ch := range c.Choices {
		b.WriteString(ch.Delta.Content)
		b.WriteString(ch.Text)
	}
	return b.String()
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
