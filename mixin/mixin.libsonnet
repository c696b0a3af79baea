// The ipvs-exporter and ipvs-checker monitoring mixin: Prometheus alerts
// (prometheusAlerts) and Grafana dashboards (grafanaDashboards), set up by
// _config (config.libsonnet). mixin/generate writes them to alerts/ and
// dashboards/; mixin/README.md shows how to import it into your own.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
