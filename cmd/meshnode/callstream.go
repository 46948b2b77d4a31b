package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/meshnode/meshnode/wire"
)

// streams decides whether call prints tokens as they arrive: asked with
// --stream, refused with --no-stream, else on a terminal for the intents
// that generate text (not with --json, which prints one document).
func (f *callFlags) streams(e *env, intent string) bool {
	switch {
	case f.noStream || f.json:
		return false
	case intent != wire.IntentChat && intent != wire.IntentCompletion:
		return false
	case f.stream:
		return true
	}
	out, ok := e.stdout.(*os.File)
	if !ok {
		return false
	}
	fi, err := out.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// streamPrinter writes each chunk's text as it arrives.
type streamPrinter struct {
	w       io.Writer
	printed bool
}

// chunk prints the text of one streamed chunk (chat delta or completion
// text of the first choice).
func (p *streamPrinter) chunk(raw json.RawMessage) error {
	var c struct {
		Choices []struct {
			Index int    `json:"index"`
			Text  string `json:"text"`
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil // not a text chunk: nothing to print
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if s := ch.Delta.Content + ch.Text; s != "" {
			if _, err := fmt.Fprint(p.w, s); err != nil {
				return err
			}
			p.printed = true
		}
	}
	return nil
}

// end finishes the streamed line.
func (p *streamPrinter) end() {
	if p != nil && p.printed {
		fmt.Fprintln(p.w)
	}
}
