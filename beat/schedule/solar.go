package schedule

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Solar runs at a solar event at a place, as Celery's solar schedule does
// (Celery asks the ephem package; this computes the Sun's apparent
// position with Meeus' algorithm, which agrees with ephem to a few seconds
// at the latitudes people live at).
type Solar struct {
	Event    string
	Lat, Lon float64
	horizon  float64 // degrees
	center   bool    // the disc's centre (twilights) rather than its upper limb
	kind     int     // rising, setting, transit
}

const (
	rising = iota
	setting
	transit
)

// SolarEvents are Celery's event names.
var SolarEvents = []string{
	"dawn_astronomical", "dawn_nautical", "dawn_civil", "sunrise", "solar_noon",
	"sunset", "dusk_civil", "dusk_nautical", "dusk_astronomical",
}

// NewSolar validates the event and coordinates with Celery's messages.
func NewSolar(event string, lat, lon float64) (*Solar, error) {
	s := &Solar{Event: event, Lat: lat, Lon: lon}
	switch event {
	case "dawn_astronomical":
		s.horizon, s.center, s.kind = -18, true, rising
	case "dawn_nautical":
		s.horizon, s.center, s.kind = -12, true, rising
	case "dawn_civil":
		s.horizon, s.center, s.kind = -6, true, rising
	case "sunrise":
		s.horizon, s.kind = -34.0/60, rising
	case "solar_noon":
		s.kind = transit
	case "sunset":
		s.horizon, s.kind = -34.0/60, setting
	case "dusk_civil":
		s.horizon, s.center, s.kind = -6, true, setting
	case "dusk_nautical":
		s.horizon, s.center, s.kind = -12, true, setting
	case "dusk_astronomical":
		// Celery 5.2.6 writes '18', not '-18', for this horizon; keep its
		// behaviour so both schedulers fire at the same time.
		s.horizon, s.center, s.kind = 18, true, setting
	default:
		sorted := slices.Clone(SolarEvents)
		slices.Sort(sorted)
		return nil, fmt.Errorf("%w: Invalid event specified: %s.\nValid events are: %s", ErrInvalid, event, strings.Join(sorted, ", "))
	}
	if lat < -90 || lat > 90 || math.IsNaN(lat) {
		return nil, fmt.Errorf("%w: Invalid latitude: %v", ErrInvalid, lat)
	}
	if lon < -180 || lon > 180 || math.IsNaN(lon) {
		return nil, fmt.Errorf("%w: Invalid longitude: %v", ErrInvalid, lon)
	}
	return s, nil
}

func (s *Solar) String() string {
	return fmt.Sprintf("<solar: %s at latitude %v, longitude: %v>", s.Event, s.Lat, s.Lon)
}

// Next returns the event's next occurrence after last. Where the Sun does
// not cross the horizon within a day (polar day or night) it returns one
// minute after the next lower transit, as Celery does, to check again then.
func (s *Solar) Next(last time.Time) time.Time {
	if last.IsZero() {
		last = time.Unix(0, 0)
	}
	if s.kind == transit {
		return crossing(last, s.hourAngle, true)
	}
	if t := crossing(last, s.altitudeAbove, s.kind == rising); !t.IsZero() {
		return t
	}
	return crossing(last, s.antiHourAngle, true).Add(time.Minute)
}

const (
	scanStep   = 20 * time.Minute
	scanWindow = 26 * time.Hour
)

// crossing finds the first time after start where f rises through zero
// (or falls, if not up), scanning in steps and then bisecting.
func crossing(start time.Time, f func(time.Time) float64, up bool) time.Time {
	a, fa := start, f(start)
	for b := start.Add(scanStep); b.Sub(start) <= scanWindow; b = b.Add(scanStep) {
		fb := f(b)
		crossed := (up && fa < 0 && fb >= 0) || (!up && fa >= 0 && fb < 0)
		// Hour angles wrap at ±180°: a jump of more than 90° is the wrap.
		if crossed && math.Abs(fb-fa) < 90 {
			lo, hi := a, b
			for hi.Sub(lo) > time.Microsecond {
				mid := lo.Add(hi.Sub(lo) / 2)
				fm := f(mid)
				if (up && fm >= 0) || (!up && fm < 0) {
					hi = mid
				} else {
					lo = mid
				}
			}
			return hi.Truncate(time.Microsecond)
		}
		a, fa = b, fb
	}
	return time.Time{}
}

// sunPosition returns the Sun's apparent right ascension and declination
// (degrees) and its distance (AU) at t (Meeus, Astronomical Algorithms ch. 25).
func sunPosition(t time.Time) (ra, dec, dist, gmst float64) {
	jd := float64(t.UnixNano())/86400e9 + 2440587.5
	d := jd - 2451545.0
	T := d / 36525
	L0 := 280.46646 + 36000.76983*T + 0.0003032*T*T
	M := 357.52911 + 35999.05029*T - 0.0001537*T*T
	e := 0.016708634 - 0.000042037*T - 0.0000001267*T*T
	Mr := rad(M)
	C := (1.914602-0.004817*T-0.000014*T*T)*math.Sin(Mr) + (0.019993-0.000101*T)*math.Sin(2*Mr) + 0.000289*math.Sin(3*Mr)
	trueLong := L0 + C
	nu := M + C
	dist = 1.000001018 * (1 - e*e) / (1 + e*math.Cos(rad(nu)))
	omega := 125.04 - 1934.136*T
	lambda := trueLong - 0.00569 - 0.00478*math.Sin(rad(omega))
	eps0 := 23.0 + (26.0+(21.448-T*(46.815+T*(0.00059-T*0.001813)))/60)/60
	eps := eps0 + 0.00256*math.Cos(rad(omega))
	lr, er := rad(lambda), rad(eps)
	ra = deg(math.Atan2(math.Cos(er)*math.Sin(lr), math.Cos(lr)))
	dec = deg(math.Asin(math.Sin(er) * math.Sin(lr)))
	gmst = 280.46061837 + 360.98564736629*d + 0.000387933*T*T - T*T*T/38710000
	// Equation of the equinoxes: apparent sidereal time.
	gmst += -0.004778 * math.Sin(rad(omega)) * math.Cos(er)
	return ra, dec, dist, gmst
}

// altitudeAbove is the altitude of the disc's centre (or upper limb) above
// the event's horizon, seen from the surface without refraction (Celery
// sets pressure 0).
func (s *Solar) altitudeAbove(t time.Time) float64 {
	ra, dec, dist, gmst := sunPosition(t)
	h := rad(gmst + s.Lon - ra)
	phi, d := rad(s.Lat), rad(dec)
	alt := deg(math.Asin(math.Sin(phi)*math.Sin(d) + math.Cos(phi)*math.Cos(d)*math.Cos(h)))
	alt -= 8.794 / 3600 / dist * math.Cos(rad(alt)) // parallax
	if !s.center {
		alt += 959.63 / 3600 / dist // the upper limb touches the horizon first
	}
	return alt - s.horizon
}

// hourAngle is the Sun's local hour angle in (-180, 180]: zero at transit.
func (s *Solar) hourAngle(t time.Time) float64 {
	ra, _, _, gmst := sunPosition(t)
	return wrap180(gmst + s.Lon - ra)
}

func (s *Solar) antiHourAngle(t time.Time) float64 { return wrap180(s.hourAngle(t) - 180) }

func wrap180(x float64) float64 {
	x = math.Mod(x, 360)
	if x > 180 {
		x -= 360
	} else if x <= -180 {
		x += 360
	}
	return x
}

func rad(d float64) float64 { return d * math.Pi / 180 }
func deg(r float64) float64 { return r * 180 / math.Pi }
