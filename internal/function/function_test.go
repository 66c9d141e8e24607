package function

import (
	"archive/zip"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func validConfig() Config {
	c := Config{Name: "fn", Runtime: "provided.al2023"}
	c.ApplyDefaults()
	return c
}

func TestDefaults(t *testing.T) {
	c := validConfig()
	if c.Timeout != 3 || c.MemorySize != 128 || c.EphemeralStorage != 512 || c.Handler != "bootstrap" || c.Architecture != "x86_64" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"name with dash and underscore", func(c *Config) { c.Name = "a-b_C9" }, true},
		{"empty name", func(c *Config) { c.Name = "" }, false},
		{"name 65 chars", func(c *Config) { c.Name = strings.Repeat("a", 65) }, false},
		{"name with dot", func(c *Config) { c.Name = "a.b" }, false},
		{"unknown runtime", func(c *Config) { c.Runtime = "java21" }, false},
		{"node handler", func(c *Config) { c.Runtime, c.Handler = "nodejs20.x", "index.handler" }, true},
		{"node handler without export", func(c *Config) { c.Runtime, c.Handler = "nodejs20.x", "index" }, false},
		{"python handler trailing dot", func(c *Config) { c.Runtime, c.Handler = "python3.12", "app." }, false},
		{"handler with space", func(c *Config) { c.Handler = "boot strap" }, false},
		{"timeout 0", func(c *Config) { c.Timeout = 0 }, false},
		{"timeout 900", func(c *Config) { c.Timeout = 900 }, true},
		{"timeout 901", func(c *Config) { c.Timeout = 901 }, false},
		{"memory 127", func(c *Config) { c.MemorySize = 127 }, false},
		{"memory 10240", func(c *Config) { c.MemorySize = 10240 }, true},
		{"memory 10241", func(c *Config) { c.MemorySize = 10241 }, false},
		{"tmp 511", func(c *Config) { c.EphemeralStorage = 511 }, false},
		{"tmp 10240", func(c *Config) { c.EphemeralStorage = 10240 }, true},
		{"description 257", func(c *Config) { c.Description = strings.Repeat("d", 257) }, false},
		{"arm64", func(c *Config) { c.Architecture = "arm64" }, true},
		{"mips", func(c *Config) { c.Architecture = "mips" }, false},
		{"env ok", func(c *Config) { c.Environment = map[string]string{"DB_URL": "x"} }, true},
		{"env key digit first", func(c *Config) { c.Environment = map[string]string{"1A": "x"} }, false},
		{"env reserved", func(c *Config) { c.Environment = map[string]string{"AWS_LAMBDA_RUNTIME_API": "x"} }, false},
		{"env too big", func(c *Config) { c.Environment = map[string]string{"BIG": strings.Repeat("x", 4094)} }, false},
		{"idle tag ok", func(c *Config) { c.Tags = map[string]string{TagIdleTimeout: "90s"} }, true},
		{"idle tag bad", func(c *Config) { c.Tags = map[string]string{TagIdleTimeout: "soon"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, name, qualifier string
		ok                   bool
	}{
		{"fn", "fn", "", true},
		{"fn:$LATEST", "fn", "$LATEST", true},
		{"fn:prod", "fn", "prod", true},
		{"000000000000:function:fn", "fn", "", true},
		{"arn:aws:lambda:us-east-1:000000000000:function:fn", "fn", "", true},
		{"arn:aws:lambda:eu-west-2:000000000000:function:fn:7", "fn", "7", true},
		{"arn:aws:lambda:us-east-1:123456789012:function:fn", "", "", false},
		{"fn:a:b", "", "", false},
		{"", "", "", false},
		{"has space", "", "", false},
		{strings.Repeat("a", 65), "", "", false},
	}
	for _, tt := range tests {
		name, q, err := ParseRef(tt.ref)
		if (err == nil) != tt.ok || name != tt.name || q != tt.qualifier {
			t.Errorf("ParseRef(%q) = %q, %q, %v", tt.ref, name, q, err)
		}
	}
}

func zipOf(t testing.TB, names ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("x"))
	}
	_ = zw.Close()
	return buf.Bytes()
}

func TestCheckHandler(t *testing.T) {
	tests := []struct {
		runtime, handler string
		files            []string
		ok               bool
	}{
		{"provided.al2023", "bootstrap", []string{"bootstrap"}, true},
		{"provided", "x", []string{"main"}, false},
		{"nodejs20.x", "index.handler", []string{"index.mjs"}, true},
		{"nodejs20.x", "src/app.handler", []string{"src/app.js"}, true},
		{"nodejs20.x", "index.handler", []string{"app.js"}, false},
		{"python3.12", "lambda_function.lambda_handler", []string{"lambda_function.py"}, true},
		{"python3.12", "pkg.mod.fn", []string{"pkg/mod.py"}, true},
		{"python3.12", "pkg/mod.fn", []string{"pkg/mod.py"}, true},
		{"python3.12", "pkg.fn", []string{"pkg/__init__.py"}, true},
		{"python3.12", "app.fn", []string{"other.py"}, false},
	}
	for _, tt := range tests {
		p, err := InspectZip(zipOf(t, tt.files...))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CheckHandler(tt.runtime, tt.handler); (err == nil) != tt.ok {
			t.Errorf("%s %s %v: %v", tt.runtime, tt.handler, tt.files, err)
		}
	}
}

func TestInspectZip(t *testing.T) {
	if _, err := InspectZip([]byte("nope")); !errors.Is(err, ErrInvalid) {
		t.Errorf("corrupt: %v", err)
	}
	for _, bad := range []string{"../x", "/abs", "a/../../x", `..\x`} {
		if _, err := InspectZip(zipOf(t, bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	p, err := InspectZip(zipOf(t, "./a/b.txt", "bootstrap"))
	if err != nil || !p.Files["a/b.txt"] || !p.Files["bootstrap"] {
		t.Errorf("clean names: %v %v", err, p)
	}
	if _, err := InspectZip(make([]byte, MaxZipBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
}

func TestCodeSha256(t *testing.T) {
	// echo -n hello | sha256sum | xxd -r -p | base64
	if got := CodeSha256([]byte("hello")); got != "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" {
		t.Errorf("CodeSha256 = %s", got)
	}
	if got := ShaKey("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="); got != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("ShaKey = %s", got)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"fn", "fn:1", "arn:aws:lambda:us-east-1:000000000000:function:fn:prod", "000000000000:function:x", "::", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, _, err := ParseRef(ref)
		if err == nil {
			if verr := ValidateName(name); verr != nil {
				t.Fatalf("ParseRef(%q) accepted name %q that ValidateName refuses: %v", ref, name, verr)
			}
		}
	})
}

func FuzzInspectZip(f *testing.F) {
	f.Add(zipOf(f, "bootstrap"))
	f.Add(zipOf(f, "a/b", "../c"))
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := InspectZip(data)
		if err != nil {
			return
		}
		for name := range p.Files {
			if strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
				t.Fatalf("accepted unsafe entry %q", name)
			}
		}
	})
}
