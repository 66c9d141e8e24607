package objects

import (
	"fmt"
	"reflect"
	"testing"
)

func indexOf(keys ...string) *Store {
	s := &Store{buckets: map[string]*index{"b": {rev: 1, objects: map[string]*Object{}}}}
	for i, k := range keys {
		s.indexObject(&Object{Bucket: "b", Key: k, Size: 1, rev: uint64(i + 1)})
	}
	return s
}

func keysOf(l Listing) []string {
	var out []string
	for _, o := range l.Objects {
		out = append(out, o.Key)
	}
	return out
}

func TestList(t *testing.T) {
	s := indexOf("a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d")
	tests := []struct {
		name, prefix, delim, after string
		max                        int
		keys, prefixes             []string
		truncated                  bool
		next                       string
	}{
		{"all", "", "", "", 1000, []string{"a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d"}, nil, false, "d"},
		{"top level", "", "/", "", 1000, []string{"b", "d"}, []string{"a/", "c/"}, false, "d"},
		{"page of two", "", "/", "", 2, []string{"b"}, []string{"a/"}, true, "b"},
		{"after a prefix", "", "/", "b", 2, []string{"d"}, []string{"c/"}, false, "d"},
		{"after a common prefix", "", "/", "a/", 10, []string{"b", "d"}, []string{"c/"}, false, "d"},
		{"under a prefix", "a/", "/", "", 10, []string{"a/1", "a/2"}, []string{"a/b/"}, false, "a/b/"},
		{"prefix, no delimiter", "c/", "", "", 10, []string{"c/1", "c/2"}, nil, false, "c/2"},
		{"after the last", "", "", "d", 10, nil, nil, false, ""},
		{"zero keys", "", "", "", 0, nil, nil, false, ""},
		{"start inside the prefix", "a/", "", "a/1", 10, []string{"a/2", "a/b/3"}, nil, false, "a/b/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := s.List("b", tt.prefix, tt.delim, tt.after, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keysOf(l), tt.keys) || !reflect.DeepEqual(l.Prefixes, tt.prefixes) || l.Truncated != tt.truncated || l.Next != tt.next {
				t.Errorf("got keys %v prefixes %v truncated %v next %q", keysOf(l), l.Prefixes, l.Truncated, l.Next)
			}
		})
	}
}

// Paging with Next as the start of the next page visits every key once.
func TestListPagesEveryKeyOnce(t *testing.T) {
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("p%d/k%03d", i%7, i))
	}
	s := indexOf(keys...)
	for _, delim := range []string{"", "/"} {
		seen := map[string]int{}
		after := ""
		for {
			l, err := s.List("b", "", delim, after, 13)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range l.Objects {
				seen[o.Key]++
			}
			for _, p := range l.Prefixes {
				seen[p]++
			}
			if !l.Truncated {
				break
			}
			after = l.Next
		}
		want := 300
		if delim == "/" {
			want = 7
		}
		if len(seen) != want {
			t.Errorf("delimiter %q: %d entries, want %d", delim, len(seen), want)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("delimiter %q: %s listed %d times", delim, k, n)
			}
		}
	}
}

func TestIndexKeepsNewest(t *testing.T) {
	s := indexOf()
	s.indexObject(&Object{Bucket: "b", Key: "k", Size: 5, rev: 10})
	s.indexObject(&Object{Bucket: "b", Key: "k", Size: 7, rev: 3}) // a late watch delivery
	if o, _ := s.Head("b", "k"); o.Size != 5 {
		t.Errorf("an older record replaced a newer one")
	}
	s.unindex("b", "k", 2)
	if _, err := s.Head("b", "k"); err != nil {
		t.Errorf("an older delete removed a newer record")
	}
	s.unindex("b", "k", 11)
	if _, err := s.Head("b", "k"); err == nil {
		t.Errorf("delete not applied")
	}
	if n, bytes := s.Stats("b"); n != 0 || bytes != 0 {
		t.Errorf("stats after delete: %d %d", n, bytes)
	}
}
