package s3

import (
	"encoding/hex"
	"testing"
)

// The catalogue's check values: each algorithm over "123456789".
func TestChecksumCheckValues(t *testing.T) {
	want := map[string]string{
		"CRC32":     "cbf43926",
		"CRC32C":    "e3069283",
		"CRC64NVME": "ae8b14860a799888",
		"SHA1":      "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
		"SHA256":    "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
	}
	for _, alg := range algorithms {
		h := newHash(alg)
		h.Write([]byte("123456789"))
		if got := hex.EncodeToString(h.Sum(nil)); got != want[alg] {
			t.Errorf("%s = %s, want %s", alg, got, want[alg])
		}
	}
}
