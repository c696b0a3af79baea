// The real servers behind the VIPs: their health as the checker finds it,
// their weights in the kernel's table, their certificates and latency.
local t = import 'templates.libsonnet';

// The labels that name a virtual service.
local service = 'proto, local_address, local_port, local_mark';

{
  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ipvs-real-servers',
        rules: [
          {
            alert: 'IPVSRealServerDown',
            expr: 'ipvs_checker_backend_up == 0',
            'for': '1m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Real server ' + t.rip + ' of VIP ' + t.vip + ' is down',
              description: 'ipvs-checker at {{ $labels.instance }} has found real server (RIP) ' + t.rip + ' of the {{ $labels.proto }} service VIP ' + t.vip + ' failing its health check for more than a minute; it gets no new connections (weight 0) unless the quorum guard holds it.',
            },
          },
          {
            alert: 'IPVSServiceNoHealthyBackend',
            expr: |||
              sum by (instance, %s) (ipvs_checker_backend_up) == 0
            ||| % service,
            'for': '1m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'VIP ' + t.vip + ' has no healthy real server',
              description: 'Every real server (RIP) of the {{ $labels.proto }} service VIP ' + t.vip + ' fails its health check (ipvs-checker at {{ $labels.instance }}): clients of this VIP get errors or timeouts.',
            },
          },
          {
            alert: 'IPVSServiceNoWeightedBackend',
            expr: |||
              sum by (instance, netns, %s) (ipvs_backend_weight) == 0
            ||| % service,
            'for': '2m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'VIP ' + t.vip + ' has no real server with a weight above 0',
              description: 'In the IPVS table seen by ipvs-exporter at {{ $labels.instance }}, every real server (RIP) of the {{ $labels.proto }} service VIP ' + t.vip + ' has weight 0 (or there is none): IPVS schedules no new connection of this VIP.',
            },
          },
          {
            alert: 'IPVSServiceDegraded',
            expr: |||
              (
                sum by (instance, %(service)s) (ipvs_checker_backend_up)
                /
                count by (instance, %(service)s) (ipvs_checker_backend_up)
              ) < %(ratio)s
              and
              sum by (instance, %(service)s) (ipvs_checker_backend_up) > 0
            ||| % { service: service, ratio: $._config.serviceDegradedRatio },
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'VIP ' + t.vip + ' has fewer than %s of its real servers healthy' % (
                if $._config.serviceDegradedRatio == 0.5 then 'half'
                else '%s%%' % ($._config.serviceDegradedRatio * 100)
              ),
              description: 'Only {{ $value | humanizePercentage }} of the real servers (RIPs) of the {{ $labels.proto }} service VIP ' + t.vip + ' pass their health check (ipvs-checker at {{ $labels.instance }}): the rest carry the load and may not have the capacity.',
            },
          },
          {
            alert: 'IPVSQuorumGuardActive',
            expr: 'ipvs_checker_quorum_guard_active == 1',
            'for': '0m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Quorum guard of VIP ' + t.vip + ' is active: too few real servers are healthy',
              description: 'Fewer real servers (RIPs) of the {{ $labels.proto }} service VIP ' + t.vip + ' are healthy than its quorum (min_up) asks, so ipvs-checker at {{ $labels.instance }} acts: without a sorry_server it fails open (failed real servers keep their weight and some clients reach them); with one, the failed real servers get weight 0 and the sorry server takes their share.',
            },
          },
          {
            alert: 'IPVSRealServerCertificateExpiringSoon',
            expr: |||
              0 < (ipvs_checker_tls_cert_not_after_timestamp_seconds - time()) < %s * 86400
            ||| % $._config.certificateExpiryDays,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'TLS certificate of real server ' + t.rip + ' (VIP ' + t.vip + ') expires in {{ $value | humanizeDuration }}',
              description: 'The leaf certificate that real server (RIP) ' + t.rip + ' of VIP ' + t.vip + ' presents expires in {{ $value | humanizeDuration }}; once expired, its HTTPS check fails and it is taken out of the service.',
            },
          },
          {
            alert: 'IPVSRealServerCertificateExpired',
            expr: |||
              (ipvs_checker_tls_cert_not_after_timestamp_seconds - time()) <= 0
              or
              max without (reason) (ipvs_checker_last_failure_info{reason="tls_expired"}) == 1
            |||,
            'for': '0m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'TLS certificate of real server ' + t.rip + ' (VIP ' + t.vip + ') has expired',
              description: 'Real server (RIP) ' + t.rip + ' of VIP ' + t.vip + ' presents an expired certificate: its HTTPS check fails and clients that verify it refuse it.',
            },
          },
          {
            alert: 'IPVSProbeLatencyHigh',
            expr: |||
              histogram_quantile(0.9, rate(ipvs_checker_probe_duration_seconds_bucket[5m])) > %s
            ||| % $._config.probeLatencyThresholdSeconds,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Health checks of real server ' + t.rip + ' (VIP ' + t.vip + ') are slow',
              description: "The 90th percentile of ipvs-checker's probe time{{ if $labels.phase }} ({{ $labels.phase }} phase){{ end }} for real server (RIP) " + t.rip + ' of VIP ' + t.vip + ' has been {{ $value | humanizeDuration }} for 10 minutes (threshold %sms): the server is overloaded, or near its check timeout and about to be marked down.' % ($._config.probeLatencyThresholdSeconds * 1000),
            },
          },
          {
            alert: 'IPVSOutOfBandWeightChanges',
            expr: |||
              increase(ipvs_checker_weight_changes_total{cause="out_of_band"}[30m]) >= %s
            ||| % $._config.outOfBandWeightChanges,
            'for': '0m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Someone keeps changing the weight of real server ' + t.rip + ' (VIP ' + t.vip + ')',
              description: 'ipvs-checker at {{ $labels.instance }} has set back the weight of real server (RIP) ' + t.rip + ' of VIP ' + t.vip + ' {{ $value | printf "%.0f" }} times in 30 minutes after another tool (ipvsadm, keepalived, a script) changed it: two controllers are fighting over this table.',
            },
          },
        ],
      },
    ],
  },
}
