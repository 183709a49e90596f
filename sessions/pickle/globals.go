package pickle

import (
	"fmt"
	"math/big"
	"time"
)

// allowed lists the only globals the decoder accepts. They are never
// resolved: call interprets each one itself.
var allowed = map[global]bool{
	{"datetime", "datetime"}:  true,
	{"datetime", "timezone"}:  true,
	{"datetime", "timedelta"}: true,
	{"pytz", "_UTC"}:          true,
	{"_codecs", "encode"}:     true,
}

func (d *decoder) pushGlobal(op byte, module, name string) error {
	g := global{module, name}
	if !allowed[g] {
		return &ForbiddenError{Opcode: op, Global: module + "." + name}
	}
	return d.push(g)
}

func badArgs(g global, args []any) error {
	return fmt.Errorf("%w: %s.%s called with %d unsupported arguments", ErrMalformed, g.module, g.name, len(args))
}

// call computes what a whitelisted global returns for args.
func call(g global, args []any) (any, error) {
	switch g {
	case global{"datetime", "datetime"}:
		return makeDatetime(g, args)
	case global{"datetime", "timezone"}:
		if len(args) < 1 || len(args) > 2 {
			return nil, badArgs(g, args)
		}
		off, ok := args[0].(time.Duration)
		if !ok || off <= -24*time.Hour || off >= 24*time.Hour || off%time.Second != 0 {
			return nil, badArgs(g, args)
		}
		name := ""
		if len(args) == 2 {
			if name, ok = args[1].(string); !ok {
				return nil, badArgs(g, args)
			}
		}
		if off == 0 && name == "" {
			return time.UTC, nil
		}
		if name == "" {
			name = utcOffsetName(off)
		}
		return time.FixedZone(name, int(off/time.Second)), nil
	case global{"datetime", "timedelta"}:
		if len(args) != 3 {
			return nil, badArgs(g, args)
		}
		var parts [3]int64
		for i, a := range args {
			n, ok := a.(int64)
			if !ok {
				return nil, badArgs(g, args)
			}
			parts[i] = n
		}
		total := new(big.Int).Mul(big.NewInt(parts[0]), big.NewInt(86400*1e9))
		total.Add(total, new(big.Int).Mul(big.NewInt(parts[1]), big.NewInt(1e9)))
		total.Add(total, new(big.Int).Mul(big.NewInt(parts[2]), big.NewInt(1e3)))
		if !total.IsInt64() {
			return nil, fmt.Errorf("%w: timedelta beyond ±292 years", ErrMalformed)
		}
		return time.Duration(total.Int64()), nil
	case global{"pytz", "_UTC"}:
		if len(args) != 0 {
			return nil, badArgs(g, args)
		}
		return time.UTC, nil
	case global{"_codecs", "encode"}:
		// Protocol 2 writes bytes as _codecs.encode(str, "latin1").
		if len(args) != 2 {
			return nil, badArgs(g, args)
		}
		s, ok1 := args[0].(string)
		enc, ok2 := args[1].(string)
		if !ok1 || !ok2 || (enc != "latin1" && enc != "latin-1") {
			return nil, &ForbiddenError{Global: "_codecs.encode", Reason: "only latin1 text is accepted"}
		}
		return latin1Bytes(s)
	}
	return nil, &ForbiddenError{Global: g.module + "." + g.name}
}

func latin1Bytes(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, fmt.Errorf("%w: latin1 text has rune %U", ErrMalformed, r)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

func utcOffsetName(off time.Duration) string {
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("UTC%c%02d:%02d", sign, int(off/time.Hour), int(off%time.Hour/time.Minute))
}

// makeDatetime reads datetime.datetime's pickled state: 10 bytes (year
// high, year low, month with the fold bit, day, hour, minute, second,
// microsecond as 3 big-endian bytes), and an optional tzinfo.
func makeDatetime(g global, args []any) (any, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, badArgs(g, args)
	}
	var state []byte
	switch s := args[0].(type) {
	case []byte:
		state = s
	case string: // Python 2 pickles; Python 3 accepts a latin1 str too
		b, err := latin1Bytes(s)
		if err != nil {
			return nil, err
		}
		state = b
	}
	if len(state) != 10 {
		return nil, badArgs(g, args)
	}
	loc := Naive
	if len(args) == 2 {
		l, ok := args[1].(*time.Location)
		if !ok {
			return nil, badArgs(g, args)
		}
		loc = l
	}
	year := int(state[0])<<8 | int(state[1])
	month := int(state[2] & 0x7f)
	day, hour, minute, sec := int(state[3]), int(state[4]), int(state[5]), int(state[6])
	us := int(state[7])<<16 | int(state[8])<<8 | int(state[9])
	if year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 59 || us > 999_999 {
		return nil, fmt.Errorf("%w: datetime state out of range", ErrMalformed)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, us*1000, loc)
	if t.Day() != day { // 31 February and the like
		return nil, fmt.Errorf("%w: datetime day out of range", ErrMalformed)
	}
	return t, nil
}
