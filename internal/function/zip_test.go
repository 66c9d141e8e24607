package function

import (
	"archive/zip"
	"bytes"
	"errors"
	"hash/crc32"
	"io/fs"
	"strings"
	"testing"
)

// entry is one member of a test zip.
type entry struct {
	name string
	body string
	link bool // a symbolic link to body
	lie  int  // added to the uncompressed size the header claims
}

func zipEntries(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		h.SetMode(0o755)
		if e.link {
			h.SetMode(fs.ModeSymlink | 0o777)
		}
		h.CRC32 = crc32.ChecksumIEEE([]byte(e.body))
		h.CompressedSize64 = uint64(len(e.body))
		h.UncompressedSize64 = uint64(len(e.body) + e.lie)
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInspectZipPackages(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name    string
		entries []entry
		runtime string
		handler string
		refused string // part of the error; empty when accepted
	}{
		{"plain bootstrap", []entry{{name: "bootstrap", body: "x"}}, "provided.al2023", "bootstrap", ""},
		{"bootstrap links inside", []entry{{name: "bin/app", body: "x"}, {name: "bootstrap", body: "bin/app", link: true}}, "provided.al2023", "bootstrap", ""},
		{"bootstrap links to /var/task", []entry{{name: "app", body: "x"}, {name: "bootstrap", body: "/var/task/app", link: true}}, "provided.al2023", "bootstrap", ""},
		{"link chain inside", []entry{{name: "a", body: "x"}, {name: "b", body: "a", link: true}, {name: "bootstrap", body: "b", link: true}}, "provided", "bootstrap", ""},
		{"other link outside is kept", []entry{{name: "bootstrap", body: "x"}, {name: "etc", body: "/etc/hosts", link: true}}, "provided", "bootstrap", ""},
		{"bootstrap links outside", []entry{{name: "bootstrap", body: "/bin/sh", link: true}}, "provided.al2023", "bootstrap", "outside the package"},
		{"bootstrap climbs out", []entry{{name: "bootstrap", body: "../../bin/sh", link: true}}, "provided.al2023", "bootstrap", "outside the package"},
		{"bootstrap dangles", []entry{{name: "bootstrap", body: "missing", link: true}}, "provided.al2023", "bootstrap", "leads nowhere"},
		{"bootstrap loops", []entry{{name: "bootstrap", body: "bootstrap", link: true}}, "provided.al2023", "bootstrap", "loop"},
		{"handler links outside", []entry{{name: "app.py", body: "/usr/lib/python3/x.py", link: true}}, "python3.11", "app.handler", "outside the package"},
		{"file and folder", []entry{{name: "bootstrap", body: "x"}, {name: "a", body: "x"}, {name: "a/b", body: "y"}}, "provided", "bootstrap", "both a file and a folder"},
		{"entry below a link", []entry{{name: "bootstrap", body: "x"}, {name: "d", body: "/etc", link: true}, {name: "d/passwd", body: "root"}}, "provided", "bootstrap", "symbolic link"},
		{"link below a link", []entry{{name: "bootstrap", body: "x"}, {name: "d", body: "/etc", link: true}, {name: "d/l", body: "x", link: true}}, "provided", "bootstrap", "symbolic link"},
		{"name too long", []entry{{name: "bootstrap", body: "x"}, {name: long, body: "x"}}, "provided", "bootstrap", "longer than 255"},
		{"path too long", []entry{{name: "bootstrap", body: "x"}, {name: strings.Repeat("d/", 1600) + "f", body: "x"}}, "provided", "bootstrap", "longer than 3072"},
		{"size lies", []entry{{name: "bootstrap", body: "hello", lie: -2}}, "provided", "bootstrap", "damaged"},
		{"size lies upwards", []entry{{name: "bootstrap", body: "hello", lie: 100}}, "provided", "bootstrap", "damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := InspectZip(zipEntries(t, tt.entries...))
			if err == nil {
				err = p.CheckHandler(tt.runtime, tt.handler)
			}
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("got %v, want an invalid-parameter error about %q", err, tt.refused)
			}
		})
	}
}

func TestEnvironmentNUL(t *testing.T) {
	c := validConfig()
	c.Environment = map[string]string{"SECRET": "a\x00b"}
	if err := c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("NUL in a value: %v", err)
	}
}

func TestListZipSkipsTheReadThrough(t *testing.T) {
	// A lying header is found by InspectZip, not by ListZip, which reads a
	// package already inspected: names and links only.
	data := zipEntries(t, entry{name: "bootstrap", body: "hello", lie: 100}, entry{name: "run", body: "bootstrap", link: true})
	if _, err := InspectZip(data); err == nil {
		t.Fatal("InspectZip accepted a lying header")
	}
	p, err := ListZip(data)
	if err != nil || !p.Files["bootstrap"] || p.Links["run"] != "bootstrap" {
		t.Fatalf("ListZip: %v %+v", err, p)
	}
}
