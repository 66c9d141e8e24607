// Command fileserver is the baseline of the S3 benchmark: a plain net/http
// server that stores a PUT's body in a file, synced before it answers, and
// serves a GET from the file.
package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	dir := os.Args[2]
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(r.URL.Path, "/"), "/", "_"))
		switch r.Method {
		case http.MethodPut:
			f, err := os.Create(name + ".tmp")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			if _, err := io.Copy(f, r.Body); err != nil || f.Sync() != nil || f.Close() != nil || os.Rename(name+".tmp", name) != nil {
				http.Error(w, "write failed", 500)
				return
			}
			if d, err := os.Open(dir); err == nil {
				_ = d.Sync()
				d.Close()
			}
		case http.MethodGet:
			http.ServeFile(w, r, name)
		}
	})
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		os.Exit(1)
	}
}
