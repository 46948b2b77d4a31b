package directory

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// riskTaxonomyJSON is a copy of spec/intent-risk-taxonomy.json (#613); a test
// keeps it identical to the shared spec.
//
//go:embed intent-risk-taxonomy.json
var riskTaxonomyJSON []byte

// Risk categories (iicp-dir.md §3.4.1 "Intent risk taxonomy").
const (
	riskProhibited   = "prohibited"
	riskHigh         = "high_risk"
	riskTransparency = "transparency_risk"
	riskMinimal      = "minimal_or_general"
)

type riskRule struct {
	Category  string   `json:"category"`
	RuleID    string   `json:"rule_id"`
	Label     string   `json:"label"`
	Fragments []string `json:"fragments"`
}

// riskRules is parsed once; the embedded file is part of the build, so a
// parse failure is a build defect surfaced by New.
var riskRules, riskErr = parseRisk(riskTaxonomyJSON)

func parseRisk(raw []byte) ([]riskRule, error) {
	var doc struct {
		Rules []riskRule `json:"rules"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing intent risk taxonomy: %w", err)
	}
	for i := range doc.Rules {
		for j, f := range doc.Rules[i].Fragments {
			doc.Rules[i].Fragments[j] = strings.ToLower(f)
		}
	}
	return doc.Rules, nil
}

// classifyIntent returns the most severe category whose fragments occur in
// the intent URN (case-insensitive substring on the structural URN, never on
// prompt content), and the rule label.
func classifyIntent(intent string) (category, label string) {
	lower := strings.ToLower(intent)
	category = riskMinimal
	for _, r := range riskRules {
		for _, f := range r.Fragments {
			if strings.Contains(lower, f) && severity(r.Category) > severity(category) {
				category, label = r.Category, r.Label
			}
		}
	}
	return category, label
}

func severity(c string) int {
	switch c {
	case riskProhibited:
		return 3
	case riskHigh:
		return 2
	case riskTransparency:
		return 1
	}
	return 0
}

// refusedIntent reports whether the public-mesh default refuses intent, with
// a caller-safe reason. Prohibited intents are always refused; high-risk
// intents unless the operator configured a private compliance profile.
func refusedIntent(intent string, allowHighRisk bool) (bool, string) {
	cat, label := classifyIntent(intent)
	switch {
	case cat == riskProhibited:
		return true, "intent is in a prohibited family (" + label + ") and is refused on the public mesh"
	case cat == riskHigh && !allowHighRisk:
		return true, "intent is high-risk (" + label + ") and is refused without a private compliance profile"
	}
	return false, ""
}
