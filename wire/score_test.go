package wire

import (
	"math"
	"testing"
)

// iicp-semantics.md §3.1: the Phase 3 and Phase 5 weights, each summing to 1,
// and a formula monotone in every factor (DIR-DISC-06: a region match never
// scores lower; DIR-DISC-04: scores in [0,1]).
func TestScoreWeights_DIR_DISC_04_06(t *testing.T) {
	perfect := ScoreInput{Availability: 1, Load: 0, Capacity: 1, Region: 1, Reputation: 1}
	if s := Score(perfect); math.Abs(s-1) > 1e-12 {
		t.Fatalf("perfect Phase 3 score %v, want 1", s)
	}
	p5 := perfect
	p5.Model, p5.ModelMatch, p5.Price = true, 1, 1
	if s := Score(p5); math.Abs(s-1) > 1e-12 {
		t.Fatalf("perfect Phase 5 score %v, want 1", s)
	}
	cases := []struct {
		in   ScoreInput
		want float64
	}{
		{ScoreInput{Availability: 1}, 0.35 + 0.28},
		{ScoreInput{Load: 1, Capacity: 1}, 0.18},
		{ScoreInput{Load: 1, Region: 1}, 0.09},
		{ScoreInput{Load: 1, Reputation: 1}, 0.10},
		{ScoreInput{Load: 1, Model: true, ModelMatch: 1}, 0.10},
		{ScoreInput{Load: 1, Model: true, Price: 1}, 0.10},
		{ScoreInput{Availability: 1, Load: 1, Model: true}, 0.25},
		{ScoreInput{Load: 0.5, Model: true}, 0.10},
		// Factors outside [0,1] are clamped, never scaled.
		{ScoreInput{Availability: 7, Load: -3, Capacity: math.NaN(), Region: 2, Reputation: 2}, 0.35 + 0.28 + 0.09 + 0.10},
	}
	for i, c := range cases {
		if got := Score(c.in); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("case %d: Score(%+v) = %v, want %v", i, c.in, got, c.want)
		}
	}
	lo := ScoreInput{Availability: 0.5, Load: 0.4, Capacity: 0.3, Region: 0, Reputation: 0.5}
	hi := lo
	hi.Region = RegionMatch("eu-west", "eu-west")
	if Score(hi) <= Score(lo) {
		t.Fatal("a region match does not raise the score")
	}
	if RoundScore(0.123456) != 0.1235 {
		t.Fatalf("RoundScore: %v", RoundScore(0.123456))
	}
}

func TestRegionMatchAndCapacityRatio(t *testing.T) {
	for _, c := range []struct {
		want, have string
		v          float64
	}{{"", "x", 1}, {"EU-West", "eu-west", 1}, {"eu-west", "eu-central", 0.5}, {"eu", "eu-west", 0.5}, {"eu-west", "us-east", 0}, {"-x", "-y", 0}, {"EU-west", "eu-central", 0.5}, {"eu-west", "EU", 0.5}} {
		if got := RegionMatch(c.want, c.have); got != c.v {
			t.Errorf("RegionMatch(%q,%q) = %v, want %v", c.want, c.have, got, c.v)
		}
	}
	if n := testing.AllocsPerRun(100, func() { RegionMatch("EU-West", "eu-central") }); n != 0 {
		t.Errorf("RegionMatch allocates %v times per call; discover calls it per candidate", n)
	}
	if CapacityRatio(0) != 0 || CapacityRatio(16) != 1 || CapacityRatio(1000) != 1 || CapacityRatio(1) >= CapacityRatio(4) {
		t.Fatal("capacity ratio not monotone or not saturating at 16")
	}
}
