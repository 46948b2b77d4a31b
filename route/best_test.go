package route

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// An echo-only node is never sent a task while a real model serves the
// intent, even when the echo node is found first (first finder) and the
// real one only by a later finder; with nothing else, echo serves.
func TestRoute_EchoOnlyAfterRealModels(t *testing.T) {
	echo := newTaskNode(t, ok)
	real := newTaskNode(t, ok)
	et := echo.target("echo")
	et.Echo = true
	res, err := newRouter(t, []Finder{finder(et), finder(real.target("real"))}).Call(context.Background(), testCall(), Query{})
	if err != nil || res.NodeID != "real" || echo.count() != 0 {
		t.Fatalf("served by %q (echo calls %d), err %v", res.NodeID, echo.count(), err)
	}
	res, err = newRouter(t, []Finder{finder(et)}).Call(context.Background(), testCall(), Query{})
	if err != nil || res.NodeID != "echo" {
		t.Fatalf("echo as last resort: %q %v", res.NodeID, err)
	}
}

// Local first (WithLocal): this node serves when its value is at least the
// best remote target's, not when a remote one is better, never with
// Query.Remote; a local capacity_exceeded moves on to the remote targets.
func TestRoute_LocalWhenBest(t *testing.T) {
	remote := newTaskNode(t, ok)
	rt := remote.target("remote")
	rt.Score = 0.8
	var localAnswer wire.Code
	local := transportFunc(func(_ context.Context, _ Target, c *wire.Call, _ string) (*wire.Response, Sent, error) {
		if localAnswer != "" {
			return &wire.Response{TaskID: c.TaskID, Status: wire.StatusError, Error: wire.NewError(localAnswer, "x"), Code: localAnswer}, Sent{}, nil
		}
		return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess}, Sent{}, nil
	})
	value := 0.9
	r := newRouter(t, []Finder{finder(rt)}, WithLocal(local, func(*wire.Call) (float64, bool) { return value, true }))
	cases := []struct {
		name  string
		value float64
		q     Query
		code  wire.Code
		want  Path
	}{
		{"local better", 0.9, Query{}, "", PathLocal},
		{"remote better", 0.5, Query{}, "", PathHTTP},
		{"remote asked for", 0.9, Query{Remote: true}, "", PathHTTP},
		{"local full", 0.9, Query{}, wire.CodeCapacityExceeded, PathHTTP},
	}
	for _, c := range cases {
		value, localAnswer = c.value, c.code
		res, err := r.Call(context.Background(), testCall(), c.q)
		if err != nil || res.Path != c.want {
			t.Errorf("%s: path %q err %v, want %q", c.name, res.Path, err, c.want)
		}
	}
}

// The three ways to find no answer are distinct errors: no candidate at
// all (IICP-E033, naming the unreachable directory when one was asked),
// every candidate failed (no_available_node, naming the last answer).
func TestRoute_DistinctNoAnswerErrors(t *testing.T) {
	var werr *wire.Error
	_, err := newRouter(t, []Finder{&fakeFinder{err: errors.New("directory unreachable")}}).Call(context.Background(), testCall(), Query{})
	if !errors.As(err, &werr) || werr.Code != wire.CodeE033 || !strings.Contains(werr.Message, "directory unreachable") {
		t.Fatalf("no candidate, directory down: %v", err)
	}
	down := newTaskNode(t, failWith(wire.CodeUnavailable))
	_, err = newRouter(t, []Finder{finder(down.target("down"))}).Call(context.Background(), testCall(), Query{})
	if !errors.As(err, &werr) || werr.Code != wire.CodeNoAvailableNode || !strings.Contains(werr.Message, "last: service_unavailable") {
		t.Fatalf("all failed: %v", err)
	}
}
