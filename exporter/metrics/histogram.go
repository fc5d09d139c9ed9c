package metrics

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The request histograms are ours rather than client_golang's because its
// native buckets sit in a sync.Map per histogram, looked up on every
// observation (about a third of Observe's CPU). Here they are a dense
// window of counters per series, and one mutex per series covers the
// counter and the three histograms of a line: two atomic operations per
// line instead of about fifteen, and a scrape always sees a count equal to
// the sum of its buckets.
//
// What they expose is what client_golang v1.25.0 exposes for the same
// observations and the same HistogramOpts, byte for byte (see
// TestGoldenExposition): the same bucket keys, zero bucket, spans,
// bucket-limit strategy, created timestamps and exemplars. Only the options
// histogramOpts sets are supported: in particular the zero bucket is never
// widened (NativeHistogramMaxZeroThreshold is 0, so client_golang never
// widens it either).

// histShape is what the histograms of one family share.
type histShape struct {
	bounds        []float64 // classic upper bounds; +Inf is implicit
	native        bool
	schema        int32 // initial schema of the native buckets
	zeroThreshold float64
	maxBuckets    int // populated native buckets before the limit strategy; 0: no limit
	minReset      time.Duration
	maxExemplars  int           // native exemplars kept
	exemplarTTL   time.Duration // a native exemplar older than this is replaced first

	// classicFrom finds the classic bucket of a positive value from its
	// native key at schema (see classicBucketOf): keyStart[k-keyLo] is how
	// many bounds lie below every value of native bucket k, below how many
	// are not positive (for keys under keyLo); past the table, all. nil
	// when the table would be too large (schema 8 over many decades).
	keyStart []uint16
	keyLo    int
	below    int
	// For observe's common case, when fast: fracs and fracStart are
	// nativeBounds and keyTables at schema (above 0), fracShift leaves a
	// mantissa's top schema+1 bits, and fastMax is maxBuckets (no limit:
	// the most an int holds).
	fast      bool
	fracs     []float64
	fracStart []uint16
	fracShift uint
	fastMax   int
}

// client_golang's defaults for what histogramOpts leaves unset.
const (
	defaultNativeExemplars   = 10
	defaultNativeExemplarTTL = 5 * time.Minute
	minSchema                = -4
	maxSchema                = 8
)

// newHistShape reads opts as client_golang's newHistogram does. It panics
// on an option our histograms do not reproduce.
func newHistShape(opts prometheus.HistogramOpts) histShape {
	if opts.NativeHistogramMaxZeroThreshold > 0 {
		panic("metrics: NativeHistogramMaxZeroThreshold (widening the zero bucket) is not implemented")
	}
	s := histShape{
		bounds:       opts.Buckets,
		maxBuckets:   int(opts.NativeHistogramMaxBucketNumber),
		minReset:     opts.NativeHistogramMinResetDuration,
		maxExemplars: opts.NativeHistogramMaxExemplars,
		exemplarTTL:  opts.NativeHistogramExemplarTTL,
	}
	if len(s.bounds) == 0 && opts.NativeHistogramBucketFactor <= 1 {
		s.bounds = prometheus.DefBuckets
	}
	if n := len(s.bounds); n > 0 && math.IsInf(s.bounds[n-1], +1) {
		s.bounds = s.bounds[:n-1]
	}
	if opts.NativeHistogramBucketFactor > 1 {
		s.native = true
		switch {
		case opts.NativeHistogramZeroThreshold > 0:
			s.zeroThreshold = opts.NativeHistogramZeroThreshold
		case opts.NativeHistogramZeroThreshold == 0:
			s.zeroThreshold = prometheus.DefNativeHistogramZeroThreshold
		}
		s.schema = schemaOf(opts.NativeHistogramBucketFactor)
		if s.exemplarTTL == 0 {
			s.exemplarTTL = defaultNativeExemplarTTL
		}
		switch {
		case s.maxExemplars == 0:
			s.maxExemplars = defaultNativeExemplars
		case s.maxExemplars < 0:
			s.maxExemplars = 0
		}
		s.keyStart, s.keyLo, s.below = keyStarts(s.bounds, s.schema)
		if s.schema > 0 && s.keyStart != nil {
			s.fast = true
			s.fracs, s.fracStart = nativeBounds[s.schema], keyTables[s.schema]
			s.fracShift = uint(52 - s.schema - 1)
			s.fastMax = s.maxBuckets
			if s.fastMax <= 0 {
				s.fastMax = math.MaxInt
			}
		}
	}
	return s
}

// maxKeyStarts bounds a shape's keyStart table (8 KiB). The default
// buckets at schema 3 need about 160 entries.
const maxKeyStarts = 4096

// keyStarts builds histShape.keyStart. A bound whose native key is below
// k is at most the lower end of bucket k, so below every value there; the
// bounds of key k itself (one, rarely two) are left to a comparison.
func keyStarts(bounds []float64, schema int32) (table []uint16, lo, below int) {
	hi, positive := 0, false
	for _, b := range bounds {
		if b <= 0 {
			below++
			continue
		}
		k := nativeKey(b, schema)
		if !positive {
			lo, hi, positive = k, k, true
		}
		lo, hi = min(lo, k), max(hi, k)
	}
	if !positive {
		// Every positive value is past all the bounds.
		return []uint16{uint16(below)}, 0, below
	}
	if hi-lo+1 > maxKeyStarts || len(bounds) > math.MaxUint16 {
		return nil, 0, 0
	}
	table = make([]uint16, hi-lo+1)
	for k := range table {
		n := 0
		for _, b := range bounds {
			if b <= 0 || nativeKey(b, schema) < lo+k {
				n++
			}
		}
		table[k] = uint16(n)
	}
	return table, lo, below
}

// classicBucketOf is classicBucket(v) for v > 0 (not NaN) of native key key
// at s.schema, from s.keyStart.
func (s *histShape) classicBucketOf(v float64, key int) int {
	i := s.below
	if k := key - s.keyLo; k >= len(s.keyStart) {
		i = len(s.bounds)
	} else if k >= 0 {
		i = int(s.keyStart[k])
	}
	for i < len(s.bounds) && v > s.bounds[i] {
		i++
	}
	return i
}

// schemaOf is the largest schema n in [-4, 8] whose bucket growth
// 2^(2^-n) is at most factor.
func schemaOf(factor float64) int32 {
	floor := math.Floor(math.Log2(math.Log2(factor)))
	switch {
	case floor <= -maxSchema:
		return maxSchema
	case floor >= -minSchema:
		return minSchema
	}
	return -int32(floor)
}

// classicBucket is the index of v's classic bucket, len(bounds) for +Inf.
// The bounds are few (13 by default), so a scan beats a binary search.
func (s *histShape) classicBucket(v float64) int {
	for i, b := range s.bounds {
		if v <= b {
			return i
		}
	}
	return len(s.bounds)
}

// nativeKey is the index of v's native bucket at schema (v not NaN, not in
// the zero bucket): bucket k holds (2^((k-1)/2^schema), 2^(k/2^schema)] in
// absolute value, and ±Inf go one past the bucket of ±MaxFloat64. It is
// client_golang's key, computed from the float's bits: the exponent field
// and, for schema > 0, the bound below the fraction found in a table by
// the mantissa's top bits (one comparison more at most) instead of a
// binary search after math.Frexp.
func nativeKey(v float64, schema int32) int {
	bits := math.Float64bits(v) &^ (1 << 63)
	inf := 0
	switch e := bits >> 52; e {
	case 0x7ff: // ±Inf
		bits, inf = math.Float64bits(math.MaxFloat64), 1
	case 0: // subnormal, in the zero bucket unless its threshold is below
		frac, exp := math.Frexp(math.Abs(v))
		return nativeKeySlow(frac, exp, schema)
	}
	exp := int(bits>>52) - 1022 // as math.Frexp's: v = frac * 2^exp, frac in [0.5, 1)
	mant := bits & (1<<52 - 1)
	if schema > 0 {
		bounds := nativeBounds[schema]
		frac := math.Float64frombits(mant | 1022<<52)
		i := int(keyTables[schema][mant>>(52-schema-1)])
		for i < len(bounds) && bounds[i] < frac {
			i++
		}
		return i + (exp-1)*len(bounds) + inf
	}
	key := exp
	if mant == 0 { // frac 0.5: v is a power of two, the upper bound of its bucket
		key--
	}
	return (key+(1<<-schema)-1)>>-schema + inf
}

// nativeKeySlow is nativeKey for a subnormal v = frac * 2^exp, whose
// exponent the float64 bits cannot hold.
func nativeKeySlow(frac float64, exp int, schema int32) int {
	if schema > 0 {
		bounds := nativeBounds[schema]
		return sort.SearchFloat64s(bounds, frac) + (exp-1)*len(bounds)
	}
	key := exp
	if frac == 0.5 {
		key--
	}
	return (key + (1 << -schema) - 1) >> -schema
}

// keyTables[schema][p], for schema 1 to 8, is how many of
// nativeBounds[schema] lie below the smallest fraction whose mantissa
// starts with the schema+1 bits p. Bounds are more than a cell of that
// width apart, so at most one more lies below any fraction of the cell.
var keyTables = func() (t [maxSchema + 1][]uint16) {
	for schema := 1; schema <= maxSchema; schema++ {
		w := schema + 1
		t[schema] = make([]uint16, 1<<w)
		for p := range t[schema] {
			frac := math.Float64frombits(uint64(p)<<(52-w) | 1022<<52)
			t[schema][p] = uint16(sort.SearchFloat64s(nativeBounds[schema], frac))
		}
	}
	return t
}()

// histogram is one series of one histogram family. Its owner's mutex guards
// every field.
type histogram struct {
	live      bool      // observed at least once: only then is it exposed
	lastReset time.Time // also the created timestamp
	// resetScheduled: the bucket limit was hit before minReset had passed,
	// and a timer resets the histogram when it has.
	resetScheduled bool
	count          uint64
	sum            float64
	classic        []uint64 // not cumulative; +Inf is count minus the rest
	zero           uint64
	schema         int32
	pos, neg       nativeBuckets
	// fast: observe's common case applies (the shape's fast, the initial
	// schema, the bucket limit not passed), one test instead of four per
	// observation. refresh keeps it: the schema falls and buckets are
	// populated only in observeAny, which refreshes it last, so it is
	// never set wrongly; a scheduled reset's clear sets it again.
	fast      bool
	exemplars []*dto.Exemplar // per classic bucket, +Inf last
	nativeEx  []*dto.Exemplar // by value
}

// start makes h live: client_golang creates a vector's child histogram on
// its first observation, and that is its created timestamp.
func (h *histogram) start(s *histShape, now time.Time) {
	h.live = true
	h.lastReset = now
	h.schema = s.schema
	h.classic = make([]uint64, len(s.bounds))
	h.exemplars = make([]*dto.Exemplar, len(s.bounds)+1)
	h.refresh(s)
}

// refresh sets h.fast after a change of schema or of populated buckets.
func (h *histogram) refresh(s *histShape) {
	h.fast = s.fast && h.schema == s.schema && h.pos.n+h.neg.n <= s.fastMax
}

// observe adds v, and applies the bucket limit. It returns v's classic
// bucket, for an exemplar. mu is the owner's (held), for a scheduled reset.
func (h *histogram) observe(v float64, s *histShape, c *clock, mu *sync.Mutex) int {
	// The common case in code without a call, so that the arguments are
	// not spilled around one: a positive normal value (v > zeroThreshold
	// keeps NaN out), at the initial schema, in a native bucket already
	// populated, under the bucket limit (which it cannot reach, then). Its
	// native key is nativeKey's computation with the shape's tables, and
	// gives its classic bucket (see classicBucketOf).
	bits := math.Float64bits(v)
	if e := int(bits >> 52); h.fast && v > s.zeroThreshold && uint(e-1) < 0x7fe {
		mant := bits & (1<<52 - 1)
		frac := math.Float64frombits(mant | 1022<<52)
		i := int(s.fracStart[mant>>(s.fracShift&63)])
		for i < len(s.fracs) && s.fracs[i] < frac {
			i++
		}
		key := i + (e-1023)*len(s.fracs)
		if i := key - h.pos.base; uint(i) < uint(len(h.pos.counts)) && h.pos.counts[i] != 0 {
			bucket := s.classicBucketOf(v, key)
			if bucket < len(h.classic) {
				h.classic[bucket]++
			}
			h.sum += v
			h.pos.counts[i]++
			h.count++
			return bucket
		}
	}
	return h.observeAny(v, s, c, mu)
}

// observeAny is observe for any value.
func (h *histogram) observeAny(v float64, s *histShape, c *clock, mu *sync.Mutex) int {
	bucket := s.classicBucket(v)
	h.add(v, bucket, s)
	if s.native && s.maxBuckets > 0 && v == v && h.pos.n+h.neg.n > s.maxBuckets {
		h.limit(v, bucket, s, c, mu)
	}
	h.refresh(s)
	return bucket
}

func (h *histogram) add(v float64, bucket int, s *histShape) {
	if bucket < len(h.classic) {
		h.classic[bucket]++
	}
	h.sum += v
	if s.native && v == v {
		switch {
		case v > s.zeroThreshold:
			h.pos.add(nativeKey(v, h.schema), 1)
		case v < -s.zeroThreshold:
			h.neg.add(nativeKey(v, h.schema), 1)
		default:
			h.zero++
		}
	}
	h.count++
}

// limit is client_golang's strategy once more native buckets than
// maxBuckets are populated: reset the histogram (keeping the observation
// that overflowed) if the last reset is at least minReset ago; else
// schedule that reset for when it will be, and halve the resolution now.
func (h *histogram) limit(v float64, bucket int, s *histShape, c *clock, mu *sync.Mutex) {
	if s.minReset > 0 && !h.resetScheduled {
		if c.now().Sub(h.lastReset) >= s.minReset {
			h.clear(s)
			h.add(v, bucket, s)
			h.lastReset = c.now()
			return
		}
		h.resetScheduled = true
		c.afterFunc(s.minReset-c.now().Sub(h.lastReset), func() {
			mu.Lock()
			defer mu.Unlock()
			h.clear(s)
			h.lastReset = c.now()
			h.resetScheduled = false
		})
	}
	if h.schema == minSchema {
		return
	}
	h.schema--
	h.pos.halve()
	h.neg.halve()
}

// clear resets the counts; exemplars stay, as in client_golang.
func (h *histogram) clear(s *histShape) {
	h.count, h.sum, h.zero = 0, 0, 0
	clear(h.classic)
	h.schema = s.schema
	h.pos.clear()
	h.neg.clear()
	h.refresh(s)
}

// exemplar records e (for the observation of e.Value in classic bucket
// bucket) as client_golang's ObserveWithExemplar does.
func (h *histogram) exemplar(e *dto.Exemplar, bucket int, s *histShape) {
	h.exemplars[bucket] = e
	if s.native && s.maxExemplars > 0 && !math.IsNaN(e.GetValue()) {
		h.addNativeExemplar(e, s)
	}
}

// addNativeExemplar keeps at most maxExemplars exemplars sorted by value.
// When full, the one replaced is the oldest if that is older than the TTL,
// else the older of the two closest in log(value), unless e would itself
// sit closer to a neighbour than that pair, in which case the neighbour
// goes: the spread over the value range stays wide. This is client_golang's
// rule, float operations included, so ties break the same way.
func (h *histogram) addNativeExemplar(e *dto.Exemplar, s *histShape) {
	ex := h.nativeEx
	if len(ex) < s.maxExemplars {
		i := 0
		for i < len(ex) && !(e.GetValue() < ex[i].GetValue()) {
			i++
		}
		h.nativeEx = slices.Insert(ex, i, e)
		return
	}
	if len(ex) == 1 {
		ex[0] = e
		return
	}
	var (
		oldest    time.Time
		oldestIdx = -1
		minDist   = -1.0 // closest pair's distance in log(value)
		at        = -1   // where e goes by value
		drop      = -1
		cur, prev float64
	)
	for i, x := range ex {
		if t := x.GetTimestamp().AsTime(); oldestIdx == -1 || t.Before(oldest) {
			oldest, oldestIdx = t, i
		}
		if at == -1 && e.GetValue() <= x.GetValue() {
			at = i
		}
		prev, cur = cur, math.Log(x.GetValue())
		if i == 0 {
			continue
		}
		if d := math.Abs(cur - prev); minDist == -1 || d < minDist {
			minDist = d
			if x.GetTimestamp().AsTime().Before(ex[i-1].GetTimestamp().AsTime()) {
				drop = i
			} else {
				drop = i - 1
			}
		}
	}
	if at == -1 {
		at = len(ex)
	}
	if e.GetTimestamp().AsTime().Sub(oldest) > s.exemplarTTL {
		drop = oldestIdx
	} else {
		l := math.Log(e.GetValue())
		if at > 0 {
			if d := math.Abs(l - math.Log(ex[at-1].GetValue())); d < minDist {
				minDist = d
				drop = at - 1
			}
		}
		if at < len(ex) {
			if d := math.Abs(math.Log(ex[at].GetValue()) - l); d < minDist {
				drop = at
			}
		}
	}
	switch {
	case drop == at:
		ex[at] = e
	case drop < at:
		copy(ex[drop:at-1], ex[drop+1:at])
		ex[at-1] = e
	default:
		copy(ex[at+1:drop+1], ex[at:drop])
		ex[at] = e
	}
}

// write fills out as client_golang's histogram Write does.
func (h *histogram) write(out *dto.Metric, s *histShape, labels []*dto.LabelPair) {
	his := &dto.Histogram{
		Bucket:           make([]*dto.Bucket, len(s.bounds)),
		SampleCount:      proto.Uint64(h.count),
		SampleSum:        proto.Float64(h.sum),
		CreatedTimestamp: timestamppb.New(h.lastReset),
	}
	out.Histogram = his
	out.Label = labels
	var cum uint64
	for i, b := range s.bounds {
		cum += h.classic[i]
		his.Bucket[i] = &dto.Bucket{CumulativeCount: proto.Uint64(cum), UpperBound: proto.Float64(b), Exemplar: h.exemplars[i]}
	}
	// A +Inf bucket only to carry its exemplar.
	if e := h.exemplars[len(s.bounds)]; e != nil {
		his.Bucket = append(his.Bucket, &dto.Bucket{
			CumulativeCount: proto.Uint64(h.count),
			UpperBound:      proto.Float64(math.Inf(1)),
			Exemplar:        e,
		})
	}
	if !s.native {
		return
	}
	his.ZeroThreshold = proto.Float64(s.zeroThreshold)
	his.Schema = proto.Int32(h.schema)
	his.ZeroCount = proto.Uint64(h.zero)
	his.NegativeSpan, his.NegativeDelta = h.neg.spans()
	his.PositiveSpan, his.PositiveDelta = h.pos.spans()
	// An empty native histogram with a zero threshold of 0 would look
	// like a classic one to a scraper.
	if s.zeroThreshold == 0 && h.zero == 0 && len(his.PositiveSpan) == 0 && len(his.NegativeSpan) == 0 {
		his.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(0)}}
	}
	his.Exemplars = append(his.Exemplars, h.nativeEx...)
}

// nativeBuckets counts the native buckets of one sign: a dense window of
// keys, grown as keys arrive. Keys that would stretch the window past
// maxWindow (values many decades apart) go to far instead. A count of 0
// is a bucket not populated: counts only grow until a reset.
type nativeBuckets struct {
	base   int      // key of counts[0]
	counts []uint64 // keys base to base+len(counts)-1
	far    map[int]uint64
	n      int // populated buckets
}

const (
	// maxWindow bounds the window at 16 KiB. At the default schema (3)
	// it spans 2^256: every duration and size a log line holds.
	maxWindow     = 2048
	initialWindow = 32
)

func (b *nativeBuckets) add(key int, inc uint64) {
	if i := key - b.base; uint(i) < uint(len(b.counts)) {
		if b.counts[i] == 0 {
			b.n++
		}
		b.counts[i] += inc
		return
	}
	b.addOutside(key, inc)
}

func (b *nativeBuckets) addOutside(key int, inc uint64) {
	if len(b.counts) == 0 {
		b.base = key - initialWindow/2
		b.counts = make([]uint64, initialWindow)
		b.add(key, inc)
		return
	}
	// The window only grows: a key once too far from it stays too far,
	// and far and the window never share a key.
	lo, hi := min(b.base, key), max(b.base+len(b.counts), key+1)
	if hi-lo > maxWindow {
		if b.far == nil {
			b.far = map[int]uint64{}
		}
		if b.far[key] == 0 {
			b.n++
		}
		b.far[key] += inc
		return
	}
	// Grow towards the key, at least doubling, so that widening ranges
	// cost a few copies in all.
	size := min(maxWindow, max(hi-lo, 2*len(b.counts)))
	base := lo
	if key < b.base {
		base = hi - size
	}
	counts := make([]uint64, size)
	copy(counts[b.base-base:], b.counts)
	b.base, b.counts = base, counts
	b.add(key, inc)
}

func (b *nativeBuckets) clear() {
	clear(b.counts)
	b.far = nil
	b.n = 0
}

// each calls fn for every populated bucket in key order.
func (b *nativeBuckets) each(fn func(key int, count uint64)) {
	var far []int
	for k := range b.far {
		far = append(far, k)
	}
	sort.Ints(far)
	for i, c := range b.counts {
		k := b.base + i
		for len(far) > 0 && far[0] < k {
			fn(far[0], b.far[far[0]])
			far = far[1:]
		}
		if c != 0 {
			fn(k, c)
		}
	}
	for _, k := range far {
		fn(k, b.far[k])
	}
}

// halve merges the buckets pairwise for the schema one lower: bucket k
// becomes ceil(k/2).
func (b *nativeBuckets) halve() {
	var next nativeBuckets
	b.each(func(k int, c uint64) {
		if k > 0 {
			k++
		}
		next.add(k/2, c)
	})
	*b = next
}

// spans encodes the populated buckets as client_golang does: a new span
// where more than two empty buckets lie between populated ones, fewer are
// written as zero counts; each count is a delta to the one before.
func (b *nativeBuckets) spans() ([]*dto.BucketSpan, []int64) {
	var (
		spans  []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   int
	)
	appendDelta := func(c int64) {
		*spans[len(spans)-1].Length++
		deltas = append(deltas, c-prev)
		prev = c
	}
	b.each(func(k int, c uint64) {
		gap := int32(k - next)
		if len(spans) == 0 || gap > 2 {
			spans = append(spans, &dto.BucketSpan{Offset: proto.Int32(gap), Length: proto.Uint32(0)})
		} else {
			for range gap {
				appendDelta(0)
			}
		}
		appendDelta(int64(c))
		next = k + 1
	})
	return spans, deltas
}
