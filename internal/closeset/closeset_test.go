package closeset

import (
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set[int]
	ran := 0
	for i := range 3 {
		if !s.Add(i, func() { ran++ }) {
			t.Fatalf("Add(%d) on an open set = false", i)
		}
	}
	s.Remove(1)
	var seen []int
	s.Range(func(c int) { seen = append(seen, c) })
	slices.Sort(seen)
	if !slices.Equal(seen, []int{0, 2}) || ran != 3 || s.Closed() {
		t.Fatalf("Range saw %v, then ran %d times, Closed %v", seen, ran, s.Closed())
	}
	open, first := s.Close()
	slices.Sort(open)
	if !first || !slices.Equal(open, []int{0, 2}) || !s.Closed() {
		t.Fatalf("Close = %v, %v; Closed %v", open, first, s.Closed())
	}
	if open, first := s.Close(); first || open != nil {
		t.Fatalf("second Close = %v, %v", open, first)
	}
	if s.Add(9, func() { ran++ }) || ran != 3 {
		t.Fatal("Add on a closed set added, or ran then")
	}
}
