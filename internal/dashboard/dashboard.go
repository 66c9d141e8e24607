// Package dashboard serves the live dashboard: static pages embedded in
// the binary, at / of the API listener. The page holds no data of its
// own: it signs its requests (SigV4, in the browser) with the key the
// user gives it and reads the same APIs and /metrics as any client.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// Handler serves / (the page) and /ui/* (its script and style).
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	assets := http.FileServerFS(sub)
	// The file server sends /index.html to /; the page is written here.
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page talks to its own origin only, and runs only its own code.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch p := path.Clean(r.URL.Path); {
		case p == "/":
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
		case strings.HasPrefix(p, "/ui/"):
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(p, "/ui")
			assets.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}

// Public reports the requests the dashboard's handler serves, which need
// no credentials: the page and its assets (never data).
func Public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/" || (strings.HasPrefix(r.URL.Path, "/ui/") && !strings.Contains(r.URL.Path, ".."))
}
