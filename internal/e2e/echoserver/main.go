// Command echoserver is the baseline of the benchmarks: a plain net/http
// server that answers a POST with its body.
package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		os.Exit(1)
	}
}
