package iam

import (
	"net/url"
	"slices"
	"testing"
)

func TestPage(t *testing.T) {
	items := []string{"a", "b", "c", "d", "e"}
	id := func(s string) string { return s }
	var got []string
	marker := ""
	for pages := 0; ; pages++ {
		form := url.Values{"MaxItems": {"2"}}
		if marker != "" {
			form.Set("Marker", marker)
		}
		out, more, next, err := page(items, form, id)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out...)
		if !more {
			break
		}
		if pages > 5 {
			t.Fatal("no end")
		}
		marker = next
	}
	if !slices.Equal(got, items) {
		t.Fatalf("paged %v", got)
	}
	for _, bad := range []url.Values{{"MaxItems": {"0"}}, {"MaxItems": {"1001"}}, {"MaxItems": {"x"}}, {"Marker": {"zz"}}} {
		if _, _, _, err := page(items, bad, id); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
