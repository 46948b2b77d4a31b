package directory

import "unique"

// strTable shares one copy of the low-cardinality strings of node records
// — regions, intents, model names, CIP levels, SDK and implementation
// names and versions — among the nodes that carry them. Each registration
// decodes its own copies; at 100k nodes kept for the directory's life that
// was a handful of small heap objects per node for the GC to mark on every
// cycle. The canonical copies are the standard library's (package unique):
// weakly held, so a value no record uses any more is dropped and invented
// values cannot grow a table of ours; interning never changes a value.
type strTable struct{}

func newStrTable() *strTable { return &strTable{} }

// intern returns the shared copy of s (s itself when empty or longer
// than any of these fields normally is).
func (*strTable) intern(s string) string {
	if s == "" || len(s) > 256 {
		return s
	}
	return unique.Make(s).Value()
}

func (t *strTable) internAll(list []string) {
	for i, s := range list {
		list[i] = t.intern(s)
	}
}

// internRecord replaces rec's low-cardinality strings by their shared
// copies (equal values: nothing a reader sees changes). It runs before the
// record is published to the index, while its creator holds it alone.
func (t *strTable) internRecord(rec *NodeRecord) {
	for _, f := range []*string{&rec.Region, &rec.CIPLevel, &rec.SDKLanguage, &rec.SDKVersion, &rec.ImplementationName,
		&rec.ImplementationVersion, &rec.SDKCompatVersion, &rec.Backend, &rec.TransportMethod} {
		*f = t.intern(*f)
	}
	for i := range rec.Capabilities {
		c := &rec.Capabilities[i]
		c.Intent, c.Quantization, c.InferenceEngine = t.intern(c.Intent), t.intern(c.Quantization), t.intern(c.InferenceEngine)
		t.internAll(c.Models)
		t.internAll(c.InputModalities)
		t.internAll(c.SupportedProfiles)
	}
}
