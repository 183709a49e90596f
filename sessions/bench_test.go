package sessions

import (
	"context"
	"testing"
)

func BenchmarkSignedCookieLoad(b *testing.B) {
	st, err := NewStore(Config{Engine: EngineSignedCookies, Keys: signingKeys(goldenKey), Now: clock(0)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := st.Load(ctx, goldenCookie)
		if err != nil || s.Len() != 3 {
			b.Fatal(s, err)
		}
	}
}
