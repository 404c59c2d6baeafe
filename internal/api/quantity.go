package api

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxMilliCPU is the largest CPU quantity accepted: a million cores. Anything
// larger is a typo, and keeping sums of it far from int64 overflow is free.
const MaxMilliCPU = 1_000_000 * 1000

// quantityError is a malformed CPU or memory quantity. It matches ErrInvalid
// so callers can treat it like any other validation failure.
type quantityError string

func (e quantityError) Error() string        { return string(e) }
func (e quantityError) Is(target error) bool { return target == ErrInvalid }

func quantityErrorf(format string, args ...any) error {
	return quantityError(fmt.Sprintf(format, args...))
}

// ParseCPU parses a CPU quantity into millicores: "500m" is 500, "0.5" is
// 500, "2" is 2000. Quantities finer than a millicore, negative ones and
// more than MaxMilliCPU are rejected.
func ParseCPU(s string) (milli int64, err error) {
	body, negative := strings.CutPrefix(s, "-")
	body, inMilli := strings.CutSuffix(body, "m")
	whole, frac, hasDot := strings.Cut(body, ".")
	if !isDigits(whole) || (hasDot && !isDigits(frac)) {
		return 0, quantityErrorf("%s: not a CPU quantity (use cores like 0.5 or millicores like 500m)", quote(s))
	}
	if negative {
		return 0, quantityErrorf("%s: CPU must not be negative", quote(s))
	}
	tooLarge := quantityErrorf("%s: CPU must be at most %d cores", quote(s), MaxMilliCPU/1000)
	whole = strings.TrimLeft(whole, "0")
	if inMilli {
		if hasDot {
			return 0, quantityErrorf("%s: CPU is counted in whole millicores (use e.g. 500m)", quote(s))
		}
		if len(whole) > 10 {
			return 0, tooLarge
		}
		n, _ := strconv.ParseInt("0"+whole, 10, 64)
		if n > MaxMilliCPU {
			return 0, tooLarge
		}
		return n, nil
	}
	if len(whole) > 7 {
		return 0, tooLarge
	}
	if len(frac) > 3 {
		if strings.TrimRight(frac[3:], "0") != "" {
			return 0, quantityErrorf("%s: CPU is counted in millicores; use at most 3 decimal places", quote(s))
		}
		frac = frac[:3]
	}
	frac += strings.Repeat("0", 3-len(frac))
	n, _ := strconv.ParseInt("0"+whole+frac, 10, 64)
	if n > MaxMilliCPU {
		return 0, tooLarge
	}
	return n, nil
}

// FormatMilliCPU formats millicores as ParseCPU reads them: whole cores as
// "2", anything else as "500m".
func FormatMilliCPU(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// memoryUnits are the suffixes Kubernetes users already write. Note what is
// missing: "m" (milli, a classic footgun), "K", and the "MB"/"GB" spellings,
// whose meaning people disagree on.
var memoryUnits = map[string]int64{
	"":   1,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
	"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}

// ParseMemory parses a memory quantity into bytes: binary suffixes
// ("128Mi", "1.5Gi"), decimal SI suffixes ("128M" is 128e6), or plain bytes.
// The result must be a whole number of bytes that fits in an int64.
func ParseMemory(s string) (bytes int64, err error) {
	body, negative := strings.CutPrefix(s, "-")
	end := strings.IndexFunc(body, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(body)
	}
	number, suffix := body[:end], body[end:]
	unit, knownUnit := memoryUnits[suffix]
	whole, frac, hasDot := strings.Cut(number, ".")
	if !knownUnit || !isDigits(whole) || (hasDot && !isDigits(frac)) {
		return 0, quantityErrorf("%s: not a memory quantity (use Mi/Gi, e.g. 128Mi)", quote(s))
	}
	if negative {
		return 0, quantityErrorf("%s: memory must not be negative", quote(s))
	}
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	tooLarge := quantityErrorf("%s: memory must be less than 8Ei", quote(s))
	if len(whole) > 19 {
		return 0, tooLarge
	}
	if len(frac) > 30 {
		return 0, quantityErrorf("%s: too many decimal places", quote(s))
	}
	// value = whole.frac * unit, computed exactly; the operands are short.
	num, _ := new(big.Int).SetString("0"+whole+frac, 10)
	num.Mul(num, big.NewInt(unit))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, quantityErrorf("%s: not a whole number of bytes", quote(s))
	}
	if !q.IsInt64() {
		return 0, tooLarge
	}
	return q.Int64(), nil
}

var binaryUnits = []struct {
	suffix string
	size   int64
}{
	{"Ei", 1 << 60}, {"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10},
}

// FormatBytes formats bytes for people: "128Mi" when exact, otherwise one
// decimal place in the largest binary unit that fits ("1.5Gi", "7.7Gi"). A
// rounded result does not parse back to the same number; it is for display.
func FormatBytes(b int64) string {
	for _, u := range binaryUnits {
		if b < u.size && b > -u.size {
			continue
		}
		if b%u.size == 0 {
			return strconv.FormatInt(b/u.size, 10) + u.suffix
		}
		v := math.Round(float64(b)/float64(u.size)*10) / 10
		return strconv.FormatFloat(v, 'f', -1, 64) + u.suffix
	}
	return strconv.FormatInt(b, 10)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quote quotes a user-supplied string for an error message, shortening it so
// one bad value cannot turn an error into a megabyte.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
