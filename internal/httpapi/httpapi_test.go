package httpapi

import "testing"

func TestMatchPrecedence(t *testing.T) {
	api := &API{Routes: map[string]*Route{}}
	for _, k := range []string{"GET /orders/{id}", "GET /orders/latest", "ANY /orders/{id}", "ANY /files/{proxy+}", "GET /files/{proxy+}", "POST /orders", "$default"} {
		api.Routes[k] = &Route{ID: k, RouteKey: k}
	}
	tests := []struct {
		method, path, want string
		params             map[string]string
	}{
		{"GET", "/orders/latest", "GET /orders/latest", nil},
		{"GET", "/orders/42", "GET /orders/{id}", map[string]string{"id": "42"}},
		{"DELETE", "/orders/42", "ANY /orders/{id}", map[string]string{"id": "42"}},
		{"POST", "/orders", "POST /orders", nil},
		{"GET", "/files/a/b/c.txt", "GET /files/{proxy+}", map[string]string{"proxy": "a/b/c.txt"}},
		{"PUT", "/files/x", "ANY /files/{proxy+}", map[string]string{"proxy": "x"}},
		{"GET", "/files", "$default", nil},
		{"GET", "/nothing/here", "$default", nil},
		{"PATCH", "/orders", "$default", nil},
	}
	for _, tt := range tests {
		r, params := Match(api, tt.method, tt.path)
		if r == nil || r.RouteKey != tt.want {
			t.Errorf("%s %s: got %v", tt.method, tt.path, r)
			continue
		}
		for k, v := range tt.params {
			if params[k] != v {
				t.Errorf("%s %s: param %s = %q, want %q", tt.method, tt.path, k, params[k], v)
			}
		}
	}
	delete(api.Routes, "$default")
	if r, _ := Match(api, "GET", "/nothing"); r != nil {
		t.Errorf("no match should be nil, got %v", r)
	}
}

func TestValidateRouteKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"$default": true, "GET /a": true, "ANY /a/{b}/{c+}": true,
		"GET a": false, "FETCH /a": false, "GET /{a+}/b": false, "GET /{": false, "": false,
	} {
		if err := ValidateRouteKey(key); (err == nil) != ok {
			t.Errorf("%q: %v", key, err)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("GET", "/orders/1")
	f.Add("POST", "//a//b/")
	f.Fuzz(func(t *testing.T, method, path string) {
		api := &API{Routes: map[string]*Route{"GET /orders/{id}": {RouteKey: "GET /orders/{id}"}, "ANY /{proxy+}": {RouteKey: "ANY /{proxy+}"}}}
		Match(api, method, path) // must not panic
	})
}
