package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report is everything one run measured; -json prints it as is.
type Report struct {
	Machine    Machine     `json:"machine"`
	Settings   Settings    `json:"settings"`
	Rows       []Row       `json:"rows"`
	Checks     []Check     `json:"checks"`
	Converge   *Converge   `json:"convergence,omitempty"`
	Directory  *DirSetup   `json:"directory_setup,omitempty"`
	Wire       []WireRow   `json:"wire,omitempty"`
	Stream     []StreamRow `json:"stream,omitempty"`
	DirScale   *DirScale   `json:"dirscale,omitempty"`
	Notes      []string    `json:"notes,omitempty"`
	Scenarios  []string    `json:"scenarios"`
	ElapsedSec float64     `json:"elapsed_s"`
}

// Settings echo the flags that shaped the run.
type Settings struct {
	DurationSec    float64 `json:"duration_s"`
	Rounds         int     `json:"rounds"`
	Concurrency    []int   `json:"concurrency"`
	BackendDelayMs float64 `json:"backend_delay_ms"`
}

// Row is one path measured at one concurrency. For every path but the
// baseline of its case, the Added/Ratio fields compare it with the baseline
// measured in the same rounds.
type Row struct {
	Scenario    string  `json:"scenario"`
	Case        string  `json:"case"`
	Path        string  `json:"path"`
	Concurrency int     `json:"concurrency"`
	OK          int64   `json:"ok"`
	Failed      int64   `json:"failed"`
	Mismatched  int64   `json:"mismatched"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	PerSec      float64 `json:"per_s"`
	Baseline    string  `json:"baseline,omitempty"`
	AddedP50us  float64 `json:"added_p50_us,omitempty"`
	AddedP99us  float64 `json:"added_p99_us,omitempty"`
	Throughput  float64 `json:"throughput_ratio,omitempty"`
	// VsProxy is node-http's throughput over the bare reverse-proxy hop's
	// (task scenario): the share of the one-hop ceiling the node keeps.
	VsProxy    float64 `json:"vs_proxy_ratio,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

func (r *Row) against(base *Row) {
	r.Baseline = base.Path
	r.AddedP50us = r.P50us - base.P50us
	r.AddedP99us = r.P99us - base.P99us
	if base.PerSec > 0 {
		r.Throughput = r.PerSec / base.PerSec
	}
}

// Check is a consistency check the run makes on itself (no lost or
// mis-attributed task, counts that add up).
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Info string `json:"info"`
}

// Converge is the advert convergence measurement of the mesh scenario.
type Converge struct {
	Nodes     int     `json:"nodes"`
	Transport string  `json:"transport"`
	Seconds   float64 `json:"seconds"`
	Done      bool    `json:"converged"`
	Known     int     `json:"adverts_known"`
	Want      int     `json:"adverts_wanted"`
}

// DirSetup says how the directory was populated and how long it took.
type DirSetup struct {
	Nodes      int     `json:"nodes"`
	Intents    int     `json:"intents"`
	Method     string  `json:"method"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_s"`
	BcryptCost int     `json:"bcrypt_cost"`
}

// WireRow is one codec operation on one CALL size.
type WireRow struct {
	Size        string  `json:"size"`
	Codec       string  `json:"codec"`
	Op          string  `json:"op"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
	BytesPerOp  int64   `json:"bytes_per_op"`
	WireBytes   int     `json:"wire_bytes"`
	VsJSON      float64 `json:"time_vs_json"`
}

// failed reports whether any check failed or any request was lost or
// mis-attributed.
func (r *Report) failed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return true
		}
	}
	for _, row := range r.Rows {
		if row.Failed > 0 || row.Mismatched > 0 {
			return true
		}
	}
	return false
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText prints the human table.
func (r *Report) writeText(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "meshnode bench  commit %s  %s %s/%s  GOMAXPROCS=%d  NumCPU=%d  CPU %q\n",
		m.Commit, m.GoVersion, m.GOOS, m.GOARCH, m.GOMAXPROCS, m.NumCPU, m.CPUModel)
	s := r.Settings
	fmt.Fprintf(w, "duration %.3gs per path per case in %d interleaved rounds, concurrency %v, backend delay %gms\n",
		s.DurationSec, s.Rounds, s.Concurrency, s.BackendDelayMs)
	if len(r.Rows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tcase\tpath\tconc\tok\tfail\tmis\tp50 µs\tp99 µs\treq/s\t+p50 µs\t+p99 µs\tthroughput×\tvs proxy×\t")
		for _, row := range r.Rows {
			added := "\t\t\t\t"
			if row.Baseline != "" {
				added = fmt.Sprintf("%+.0f\t%+.0f\t%.2f\t", row.AddedP50us, row.AddedP99us, row.Throughput)
				if row.VsProxy > 0 {
					added += fmt.Sprintf("%.2f", row.VsProxy)
				}
				added += "\t"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%s\n", row.Scenario, row.Case, row.Path,
				row.Concurrency, row.OK, row.Failed, row.Mismatched, row.P50us, row.P99us, row.PerSec, added)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "(+p50/+p99/throughput× compare a path with the first path of its case, measured in the same rounds;")
		fmt.Fprintln(w, " vs proxy× is node-http's throughput over the bare reverse-proxy hop's, the ceiling of any HTTP-forwarding node)")
	}
	if c := r.Converge; c != nil {
		state := "converged"
		if !c.Done {
			state = fmt.Sprintf("NOT converged (%d/%d adverts known)", c.Known, c.Want)
		}
		fmt.Fprintf(w, "\nmesh advert convergence: %d nodes (%s, production mesh defaults): %s in %.2fs\n", c.Nodes, c.Transport, state, c.Seconds)
	}
	if d := r.Directory; d != nil {
		fmt.Fprintf(w, "\ndirectory: %d nodes over %d intents populated via %s in %.1fs (%.0f/s, bcrypt cost %d)\n",
			d.Nodes, d.Intents, d.Method, d.Seconds, d.PerSec, d.BcryptCost)
	}
	if len(r.Wire) > 0 {
		r.writeWire(w)
	}
	if r.DirScale != nil {
		r.writeDirScale(w)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "\nchecks:")
		for _, c := range r.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Info)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, row := range r.Rows {
		if row.FirstError != "" {
			fmt.Fprintf(w, "first error on %s %s %s c=%d: %s\n", row.Scenario, row.Case, row.Path, row.Concurrency, row.FirstError)
		}
	}
	fmt.Fprintf(w, "total %.1fs\n", r.ElapsedSec)
	return nil
}

func (r *Report) writeWire(w io.Writer) {
	fmt.Fprintln(w, "\nwire codecs (chat CALL; testing.Benchmark):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\top\tcodec\tns/op\tallocs/op\tB/op\twire bytes\ttime vs json\t")
	for _, x := range r.Wire {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%d\t%d\t%d\t%.2f\t\n", x.Size, x.Op, x.Codec, x.NsPerOp, x.AllocsPerOp, x.BytesPerOp, x.WireBytes, x.VsJSON)
	}
	_ = tw.Flush()
}

// parseList splits a comma-separated flag value, dropping blanks.
func parseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
