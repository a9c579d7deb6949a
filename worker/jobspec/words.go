package jobspec

import (
	"errors"
	"reflect"
	"strings"
	"sync"

	"github.com/dsae/dsae/sae"
)

// Words names the settings of a spec in the terms of one source of
// settings, for messages: it maps a vocabulary name (sae's JSON name:
// hidden, weight_decay, and the derived d and total_steps) to what the user
// wrote. Flags, Keys and Fields are the three sources; a command that reads
// both a file and flags can mix them (see Explain).
type Words func(name string) string

var (
	// Flags names settings as the command line does: --hidden,
	// --weight-decay. d has no flag (it comes from the data) and stays d;
	// total_steps is the run's --steps.
	Flags Words = func(name string) string {
		switch name = settingOf(name); name {
		case "d":
			return name
		default:
			return "--" + FlagName(name)
		}
	}
	// Keys names settings as a YAML spec file does: hidden, weight_decay.
	Keys Words = func(name string) string { return settingOf(name) }
	// Fields names settings as the protobuf JobSpec of the control API
	// does: model.hidden, optimizer.lr, batch.
	Fields Words = func(name string) string {
		name = settingOf(name)
		if p, ok := vocabulary()[name]; ok {
			return p
		}
		return name
	}
)

// settingOf maps the derived total_steps to the setting it follows from,
// steps; other names are their own setting.
func settingOf(name string) string {
	if name == "total_steps" {
		return "steps"
	}
	return name
}

var (
	vocabOnce sync.Once
	vocab     map[string]string
)

// vocabulary maps every name a validation message can use (the settings
// of a Spec and the derived d and total_steps) to its proto field path.
func vocabulary() map[string]string {
	vocabOnce.Do(func() {
		vocab = map[string]string{}
		t := reflect.TypeFor[Spec]()
		for i := range t.NumField() {
			f := t.Field(i)
			name := jsonName(f)
			if f.Type.Kind() != reflect.Struct {
				vocab[name] = name
				continue
			}
			for j := range f.Type.NumField() {
				sub := jsonName(f.Type.Field(j))
				vocab[sub] = name + "." + sub
			}
		}
	})
	return vocab
}

// SettingError is a validation error told in the words of the source of
// the settings (Explain). It unwraps to the validator's own error, so
// errors.Is(err, sae.ErrInvalidConfig), sae.ErrInvalidOptimizer or
// ErrInvalidSpec still holds.
type SettingError struct {
	// Setting is the vocabulary name of the setting at fault (hidden,
	// weight_decay, epochs; steps for the derived total_steps).
	Setting string
	// Msg is the message in the source's words, without a package prefix:
	// "--hidden = 0 out of range [1, +inf)".
	Msg string
	// Err is the validator's error.
	Err error
}

func (e *SettingError) Error() string { return e.Msg }

// Unwrap returns the validator's error.
func (e *SettingError) Unwrap() error { return e.Err }

// Explain returns err, an error of Spec.Validate, sae.Config.Validate or
// sae.OptimizerConfig.Validate, as a *SettingError whose message names the
// settings with w: `sae: hidden = 0 out of range [1, +inf)` becomes
// `--hidden = 0 out of range [1, +inf)` with Flags, and
// `model.hidden = 0 …` with Fields. Names are replaced where those
// messages use them as names (before '=', first in the message, after
// "requires", "needs", "set" and "from"), never in quoted values or in
// prose such as "the cosine schedule"; when the setting at fault is not
// named that way the message is prefixed with its name ("--hidden:
// d*hidden = … too large"). Other errors, nil included, are returned as
// they are.
func Explain(err error, w Words) error {
	setting, body, ok := settingOfErr(err)
	if !ok {
		return err
	}
	setting = settingOf(setting)
	msg := rename(body, w)
	if name := w(setting); !hasWord(msg, name) {
		msg = name + ": " + msg
	}
	return &SettingError{Setting: setting, Msg: msg, Err: err}
}

// settingOfErr finds the setting at fault and the message without its
// package prefix in an error of one of the validators.
func settingOfErr(err error) (setting, body string, ok bool) {
	if err == nil {
		return "", "", false
	}
	var ce *sae.ConfigError
	var se *specError
	switch {
	case errors.As(err, &ce) && ce.Error() == err.Error():
		return ce.Field, ce.Msg, true
	case errors.As(err, &se) && se.setting != "" && se.Error() == err.Error():
		return se.setting, se.msg, true
	case errors.Is(err, sae.ErrInvalidOptimizer):
		body, found := strings.CutPrefix(err.Error(), sae.ErrInvalidOptimizer.Error()+": ")
		if !found {
			return "", "", false
		}
		first, _, _ := strings.Cut(body, " ")
		if _, known := vocabulary()[first]; !known {
			return "", "", false
		}
		return first, body, true
	}
	return "", "", false
}

// nameBefore are the words after which a validation message names a
// setting.
var nameBefore = map[string]bool{"requires": true, "needs": true, "set": true, "from": true}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// rename replaces the setting names of a validation message with w's
// words (see Explain for where).
func rename(msg string, w Words) string {
	vocab := vocabulary()
	var b strings.Builder
	prevWord := ""
	for i := 0; i < len(msg); {
		c := msg[i]
		switch {
		case c == '"': // a quoted value: copied as it is
			j := strings.IndexByte(msg[i+1:], '"')
			if j < 0 {
				j = len(msg) - i - 2
			}
			b.WriteString(msg[i : i+j+2])
			i += j + 2
			prevWord = ""
		case isWordByte(c):
			j := i
			for j < len(msg) && isWordByte(msg[j]) {
				j++
			}
			word := msg[i:j]
			if _, known := vocab[word]; known && namedAt(msg, i, j, prevWord) {
				b.WriteString(w(word))
			} else {
				b.WriteString(word)
			}
			prevWord, i = word, j
		default:
			if c != ' ' {
				prevWord = ""
			}
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// namedAt reports whether msg[i:j], a vocabulary word after prevWord, is
// used as a setting's name.
func namedAt(msg string, i, j int, prevWord string) bool {
	if (i > 0 && msg[i-1] == '*') || (j < len(msg) && msg[j] == '*') {
		return false // a product such as d*hidden
	}
	rest := strings.TrimLeft(msg[j:], " ")
	if strings.HasPrefix(rest, "=") && !strings.HasPrefix(rest, "==") {
		return true
	}
	return i == 0 || nameBefore[prevWord]
}

// hasWord reports whether name occurs in s as a whole word, not as a
// factor of a product (d*hidden).
func hasWord(s, name string) bool {
	for off := 0; ; {
		k := strings.Index(s[off:], name)
		if k < 0 {
			return false
		}
		a, e := off+k, off+k+len(name)
		if (a == 0 || !isWordByte(s[a-1]) && s[a-1] != '-' && s[a-1] != '*') && (e == len(s) || !isWordByte(s[e]) && s[e] != '*') {
			return true
		}
		off = a + 1
	}
}
