package telemetry

import (
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics are the service's Prometheus metrics. Every label has a bounded set of values: route
// templates (or "unmatched"), status classes, fixed outcomes and reasons; never an email, a
// token or a user id.
type Metrics struct {
	Registry *prometheus.Registry
	// MeterProvider is the OpenTelemetry meter provider, exported through Registry, for
	// instrumentation that speaks OpenTelemetry (the Redis client's own metrics).
	MeterProvider  metric.MeterProvider
	Requests       *prometheus.CounterVec
	Duration       *prometheus.HistogramVec
	Registrations  prometheus.Counter
	Logins         *prometheus.CounterVec
	Refreshes      *prometheus.CounterVec
	RefreshReuse   prometheus.Counter
	Revocations    *prometheus.CounterVec
	ActiveSessions prometheus.Gauge
	DependencyUp   *prometheus.GaugeVec
	Ready          prometheus.Gauge
	// HashWait and HashRun are how long each password hash waited for a hashing slot and how
	// long it ran (argon2id); see ObserveHashing for the slots' load.
	HashWait prometheus.Histogram
	HashRun  prometheus.Histogram
}

// NewMetrics registers the metrics, the Go runtime and process collectors, and the database
// pool's statistics.
func NewMetrics(pool *pgxpool.Pool) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_http_requests_total", Help: "HTTP requests by route template, method and status class."},
			[]string{"route", "method", "status_class"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_http_request_duration_seconds", Help: "HTTP request duration by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route", "method"}),
		Registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "portcullis_auth_registrations_total", Help: "Accounts registered."}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_auth_logins_total",
			Help: "Login attempts by outcome: success, bad_credentials, locked, rate_limited, disabled, overloaded."}, []string{"outcome"}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_auth_refreshes_total",
			Help: "Token refreshes by outcome: success, invalid, reused, race."}, []string{"outcome"}),
		RefreshReuse:   prometheus.NewCounter(prometheus.CounterOpts{Name: "portcullis_auth_refresh_reuse_total", Help: "Spent refresh tokens presented again (a stolen-token signal); each revokes its session."}),
		Revocations:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_sessions_revoked_total", Help: "Sessions revoked, by reason."}, []string{"reason"}),
		ActiveSessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portcullis_sessions_active", Help: "Live sessions, sampled from PostgreSQL."}),
		DependencyUp:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portcullis_dependency_up", Help: "1 when the dependency answered its last check."}, []string{"dependency"}),
		Ready:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "portcullis_ready", Help: "1 while serving and ready; 0 when not ready or draining."}),
		HashWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "portcullis_password_hash_wait_seconds",
			Help:    "Time a password hash (login, registration, password change) waited for a hashing slot.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		HashRun: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "portcullis_password_hash_duration_seconds",
			Help:    "Time one argon2id password hash or verification ran.",
			Buckets: []float64{.005, .01, .015, .02, .025, .03, .04, .05, .075, .1, .25}}),
	}
	r.MustRegister(m.Requests, m.Duration, m.Registrations, m.Logins, m.Refreshes, m.RefreshReuse, m.Revocations,
		m.ActiveSessions, m.DependencyUp, m.Ready, m.HashWait, m.HashRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		r.MustRegister(poolCollector{pool})
	}
	m.MeterProvider = noopmetric.NewMeterProvider()
	if exp, err := otelprom.New(otelprom.WithRegisterer(r), otelprom.WithoutScopeInfo()); err == nil {
		m.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	}
	return m
}

// ObserveHashing exports the hashing slots' load, read at scrape time from load: hashes running
// and hashes queued for a slot (beyond the queue, logins and registrations get 503 overloaded).
func (m *Metrics) ObserveHashing(load func() (running, queued int)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_password_hashes_running", Help: "Password hashes running now."},
			func() float64 { r, _ := load(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_password_hashes_queued", Help: "Password hashes waiting for a hashing slot now."},
			func() float64 { _, q := load(); return float64(q) }))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

var (
	poolConns = prometheus.NewDesc("portcullis_db_pool_connections", "Database pool connections by state.", []string{"state"}, nil)
	poolWait  = prometheus.NewDesc("portcullis_db_pool_acquire_wait_seconds_total", "Time spent waiting for a database connection.", nil, nil)
)

// poolCollector reads pgxpool statistics at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

func (poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolConns; ch <- poolWait }

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.pool.Stat()
	for state, v := range map[string]int32{"acquired": s.AcquiredConns(), "idle": s.IdleConns(), "total": s.TotalConns(), "max": s.MaxConns()} {
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(v), state)
	}
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, s.AcquireDuration().Seconds())
}
