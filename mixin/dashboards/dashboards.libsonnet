// The Grafana dashboards, by file name (dashboards/<name>).
(import 'overview.libsonnet')
+ (import 'service.libsonnet')
+ (import 'checker.libsonnet')
