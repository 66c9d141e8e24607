package logs

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Level is a log level, as LoggingConfig names them; 0 is unset.
type Level int

// Levels, lowest first.
const (
	Trace Level = iota + 1
	Debug
	Info
	Warn
	Error
	Fatal
)

var levelNames = []string{"", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return ""
	}
	return levelNames[l]
}

// ParseLevel reads a level name (any case; WARNING and CRITICAL as
// Python names them); 0 when it is none.
func ParseLevel(s string) Level {
	switch u := strings.ToUpper(strings.TrimSpace(s)); u {
	case "WARNING":
		return Warn
	case "CRITICAL":
		return Fatal
	default:
		for i, n := range levelNames {
			if i > 0 && n == u {
				return Level(i)
			}
		}
	}
	return 0
}

// Format is a function's LoggingConfig as captures apply it: JSON records
// for platform lines, and the lowest levels kept.
type Format struct {
	JSON     bool
	AppLevel Level // the function's own JSON lines below it are dropped
	SysLevel Level // platform records below it are dropped (JSON only)
}

// LevelOf is the level a log line states: a JSON record's "level", or
// the level field of Lambda's text formats (Node.js: TIME\tID\tLEVEL\t...,
// Python: [LEVEL]\tTIME\tID\t...); 0 when it states none.
func LevelOf(line []byte) Level {
	if len(line) > 0 && line[0] == '{' {
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(line, &rec) == nil {
			return ParseLevel(rec.Level)
		}
		return 0
	}
	if len(line) > 2 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 && end < 12 {
			return ParseLevel(string(line[1:end]))
		}
	}
	f := bytes.SplitN(line, []byte{'\t'}, 4)
	if len(f) == 4 {
		return ParseLevel(string(f[2]))
	}
	if bytes.HasPrefix(line, []byte("START ")) || bytes.HasPrefix(line, []byte("END ")) || bytes.HasPrefix(line, []byte("REPORT ")) || bytes.HasPrefix(line, []byte("INIT_")) {
		return Info
	}
	return 0
}

// keepApp says whether a line of the function's own survives the format.
func (f Format) keepApp(line []byte) bool {
	if !f.JSON || f.AppLevel == 0 || len(line) == 0 || line[0] != '{' {
		return true
	}
	l := LevelOf(line)
	return l == 0 || l >= f.AppLevel
}

// Report is what an invocation's REPORT line (platform.report) says.
type Report struct {
	RequestID  string
	Duration   time.Duration
	BilledMs   int64
	MemoryMB   int
	MaxMemMB   int
	InitMs     float64 // with Cold
	Cold       bool
	Status     string // success, error, timeout
	ErrorType  string
	Phase      string // for init reports: init
	InitStatus string
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportText is Lambda's REPORT line.
func reportText(r Report) string {
	b := make([]byte, 0, 192)
	b = append(b, "REPORT RequestId: "...)
	b = append(b, r.RequestID...)
	b = append(b, "\tDuration: "...)
	b = strconv.AppendFloat(b, ms(r.Duration), 'f', 2, 64)
	b = append(b, " ms\tBilled Duration: "...)
	b = strconv.AppendInt(b, r.BilledMs, 10)
	b = append(b, " ms\tMemory Size: "...)
	b = strconv.AppendInt(b, int64(r.MemoryMB), 10)
	b = append(b, " MB\tMax Memory Used: "...)
	b = strconv.AppendInt(b, int64(r.MaxMemMB), 10)
	b = append(b, " MB\t"...)
	if r.Cold {
		b = append(b, "Init Duration: "...)
		b = strconv.AppendFloat(b, r.InitMs, 'f', 2, 64)
		b = append(b, " ms\t"...)
	}
	return string(b)
}

// platformRecord is a platform line in the JSON format.
func platformRecord(t time.Time, typ string, record map[string]any) []byte {
	b, _ := json.Marshal(struct {
		Time   string         `json:"time"`
		Type   string         `json:"type"`
		Record map[string]any `json:"record"`
	}{t.UTC().Format("2006-01-02T15:04:05.000Z"), typ, record})
	return b
}

func round2(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 2, 64), 64)
	return f
}
