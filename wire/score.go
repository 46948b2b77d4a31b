package wire

import (
	"math"
	"strings"
)

// ScoreInput holds the factors of the iicp-semantics.md §3.1 score, each in
// [0,1] (values outside are clamped). How a factor is measured is the
// scorer's business (a directory from registrations and heartbeats, a mesh
// node from signed adverts); the formula is this package's.
type ScoreInput struct {
	Availability float64 // availability_factor
	Load         float64 // normalized_load
	Capacity     float64 // capacity_ratio
	Region       float64 // region_match
	Reputation   float64 // reputation_score
	// Model selects the Phase 5 weights (the query names a model,
	// ADR-012); ModelMatch and Price count only then.
	Model      bool
	ModelMatch float64 // model_match
	Price      float64 // price_score
}

// Score is the §3.1 formula: the Phase 3 weights, or the Phase 5 weights
// when in.Model is set. The result is in [0,1] and unrounded (RoundScore
// gives the published 4-decimal value). It is monotone in every factor, so
// a score computed with an upper bound of a factor bounds the exact one.
func Score(in ScoreInput) float64 {
	a, l, c, r, rep := Clamp01(in.Availability), Clamp01(in.Load), Clamp01(in.Capacity), Clamp01(in.Region), Clamp01(in.Reputation)
	if !in.Model {
		return Clamp01(0.35*a + 0.28*(1-l) + 0.18*c + 0.09*r + 0.10*rep)
	}
	return Clamp01(0.25*a + 0.20*(1-l) + 0.15*c + 0.10*r + 0.10*rep + 0.10*Clamp01(in.ModelMatch) + 0.10*Clamp01(in.Price))
}

// RoundScore rounds a score to the 4 decimals directories publish.
func RoundScore(s float64) float64 { return math.Round(Clamp01(s)*10000) / 10000 }

// MinScore: directories drop nodes scoring below it from discovery
// (iicp-semantics.md §3.3).
const MinScore = 0.1

// capacityRef is the max_concurrent at which CapacityRatio saturates.
const capacityRef = 16

// CapacityRatio is capacity_ratio for a node with maxConcurrent slots:
// min(1, log2(1+max_concurrent)/log2(1+16)), so a 16-slot node is "full
// capacity" and small nodes are not crushed by huge ones (the spec leaves
// the term open; docs/spec-decisions.md ## directory).
func CapacityRatio(maxConcurrent int) float64 {
	if maxConcurrent <= 0 {
		return 0
	}
	return math.Min(1, math.Log2(1+float64(maxConcurrent))/math.Log2(1+capacityRef))
}

// RegionMatch is region_match: 1 for no preference or an exact
// (case-insensitive) match, 0.5 for the same leading label ("eu-west" and
// "eu-central"), else 0. It allocates nothing: directories call it for
// every candidate of every discover.
func RegionMatch(want, have string) float64 {
	if want == "" || strings.EqualFold(want, have) {
		return 1
	}
	w, _, _ := strings.Cut(want, "-")
	h, _, _ := strings.Cut(have, "-")
	if w != "" && strings.EqualFold(w, h) {
		return 0.5
	}
	return 0
}

// Clamp01 clamps a score factor to [0,1]; NaN counts as 0.
func Clamp01(v float64) float64 {
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}
