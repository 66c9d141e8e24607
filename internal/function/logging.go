package function

import "slices"

// LoggingConfig is a function's LoggingConfig: the format of its log and,
// in the JSON format, the lowest levels kept.
type LoggingConfig struct {
	LogFormat           string `json:"logFormat,omitempty"` // Text (default) or JSON
	ApplicationLogLevel string `json:"applicationLogLevel,omitempty"`
	SystemLogLevel      string `json:"systemLogLevel,omitempty"`
}

// JSON reports the JSON log format.
func (l *LoggingConfig) JSON() bool { return l != nil && l.LogFormat == "JSON" }

// LogGroup is the log group of a function, as Lambda names it.
func LogGroup(name string) string { return "/aws/lambda/" + name }

var (
	appLevels = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	sysLevels = []string{"DEBUG", "INFO", "WARN"}
)

func (l *LoggingConfig) validate() error {
	if l == nil {
		return nil
	}
	if l.LogFormat != "" && l.LogFormat != "Text" && l.LogFormat != "JSON" {
		return invalidf("Value '%s' at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [Text, JSON]", l.LogFormat)
	}
	if l.ApplicationLogLevel != "" && !slices.Contains(appLevels, l.ApplicationLogLevel) {
		return invalidf("Value '%s' at 'loggingConfig.applicationLogLevel' failed to satisfy constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]", l.ApplicationLogLevel)
	}
	if l.SystemLogLevel != "" && !slices.Contains(sysLevels, l.SystemLogLevel) {
		return invalidf("Value '%s' at 'loggingConfig.systemLogLevel' failed to satisfy constraint: Member must satisfy enum value set: [DEBUG, INFO, WARN]", l.SystemLogLevel)
	}
	if !l.JSON() && (l.ApplicationLogLevel != "" || l.SystemLogLevel != "") {
		return invalidf("Log levels can be set only with the JSON log format: set LoggingConfig.LogFormat to JSON")
	}
	return nil
}
