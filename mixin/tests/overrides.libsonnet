// The mixin as a site that names its jobs and thresholds otherwise would
// import it (mixin/README.md). ops-tests/tests/mixin.rs generates the
// rules and dashboards from it and runs overrides.rules.test.yml on them.
(import 'mixin.libsonnet') + {
  _config+:: {
    exporterJobName: 'lvs-exporter',
    checkerJobName: 'lvs-checker',
    serviceDegradedRatio: 0.75,
    probeLatencyThresholdSeconds: 0.25,
    runbookBaseURL: 'https://git.example.org/lvs/ipvs-suite/-/blob/main/',
    dashboardTags: ['lvs-fleet', 'ipvs'],
  },
}
