package directory

import "sync"

// strTable shares one copy of the low-cardinality strings of node records
// — regions, intents, model names, CIP levels, SDK and implementation
// names and versions — among the nodes that carry them. Each registration
// decodes its own copies; at 100k nodes kept for the directory's life that
// was a handful of small heap objects per node for the GC to mark on every
// cycle. Distinct values are capped (the fields are free text in
// REGISTER): past the cap a string is kept as decoded, so the cap bounds
// memory and never changes a value.
type strTable struct {
	mu sync.RWMutex
	m  map[string]string
}

// maxInternedStrings bounds the table against registrations that invent
// values.
const maxInternedStrings = 16384

func newStrTable() *strTable { return &strTable{m: make(map[string]string)} }

// intern returns the shared copy of s (s itself when new and there is no
// room).
func (t *strTable) intern(s string) string {
	if s == "" || len(s) > 256 {
		return s
	}
	t.mu.RLock()
	v, ok := t.m[s]
	t.mu.RUnlock()
	if ok {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	if len(t.m) < maxInternedStrings {
		t.m[s] = s
	}
	return s
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
