// The settings of the mixin. Override any of them in your own mixin:
//
//   (import 'ipvs-mixin/mixin.libsonnet') + {
//     _config+:: { exporterJobName: 'lvs-exporter', serviceDegradedRatio: 0.75 },
//   }
//
// mixin/README.md describes each field.
{
  _config+:: {
    // The Prometheus jobs that scrape ipvs-exporter and ipvs-checker (as
    // examples/prometheus/prometheus.yml names them).
    exporterJobName: 'ipvs-exporter',
    checkerJobName: 'ipvs-checker',

    // The series of each daemon among every target Prometheus scrapes.
    // Only generic metrics need them (up, process_*): the ipvs_* names
    // already say which daemon a series comes from. Late-bound, so a new
    // job name above changes them too; add other matchers (a cluster
    // label) by overriding them.
    exporterSelector: 'job="%s"' % self.exporterJobName,
    checkerSelector: 'job="%s"' % self.checkerJobName,
    // Both daemons at once (restarts, CPU and memory).
    daemonsSelector: 'job=~"%s|%s"' % [self.exporterJobName, self.checkerJobName],

    // Thresholds of the alerts.
    // IPVSServiceDegraded: the share of a VIP's real servers that pass their
    // checks below which it fires.
    serviceDegradedRatio: 0.5,
    // IPVSProbeLatencyHigh: the 90th percentile of a real server's probe
    // time above which it fires, in seconds.
    probeLatencyThresholdSeconds: 0.5,
    // IPVSRealServerCertificateExpiringSoon: days before a real server's
    // certificate expires.
    certificateExpiryDays: 14,
    // IPVSOutOfBandWeightChanges: weights set back in 30 minutes.
    outOfBandWeightChanges: 3,
    // IPVSDaemonRestarting: restarts of one daemon in 15 minutes.
    daemonRestarts: 2,
    // IPVSCheckerProbesLate: probes of one checker that timed out in 10
    // minutes while it was itself behind.
    checkerLateProbes: 10,

    // Put in front of every runbook_url (alerts/README.md#<alert>), e.g.
    // your Git server's view of this repository:
    // 'https://git.example.org/lvs/ipvs-suite/-/blob/main/'.
    runbookBaseURL: '',

    // The dashboards' tags; their "IPVS dashboards" menu lists the
    // dashboards that have the first one.
    dashboardTags: ['ipvs', 'lvs'],
    // Which Prometheus datasources the datasource picker lists (a regex on
    // their names; empty: every Prometheus datasource).
    datasourceRegex: '',
    dashboardRefresh: '30s',
    dashboardTimeFrom: 'now-1h',
  },
}
