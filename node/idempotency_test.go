package node

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TASK-2 keeps working with pointer-free keys: ids that differ in length,
// case, a trailing byte or only past the 36th byte stay distinct, and a
// repeat of any of them is still a duplicate.
func TestTASK_2_IdempotencyKeysStayDistinct(t *testing.T) {
	long := strings.Repeat("x", 40)
	ids := []string{"a", "a\x00", "A", "6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f", "6F1C2F0E-3B7A-4C1E-9D2A-0A1B2C3D4E5F",
		long + "1", long + "2", strings.Repeat("y", 36), ""}
	s := newIdempotency(time.Hour, 100)
	now := time.Unix(1000, 0)
	for _, id := range ids {
		if _, ok := s.reserve(id, now); !ok {
			t.Fatalf("%q refused as a duplicate of another id", id)
		}
	}
	for _, id := range ids {
		if _, ok := s.reserve(id, now.Add(time.Minute)); ok {
			t.Fatalf("%q accepted twice", id)
		}
	}
	if s.size() != len(ids) {
		t.Fatalf("size %d, want %d", s.size(), len(ids))
	}
}

// The remembered task_ids hold no pointers, so the garbage collector never
// scans them (up to DefaultIdempotencyCap entries live for the TTL).
func TestIdempotencyEntriesArePointerFree(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[idemKey](), reflect.TypeFor[idemEntry]()} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	}
	return false
}
