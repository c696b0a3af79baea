// alerts/ipvs.rules.yml: the mixin's alerts as a Prometheus rule file,
// behind a comment that says where it comes from. mixin/generate runs it
// with the mixin as the top-level argument.
local yaml = import 'yaml.libsonnet';

function(mixin)
  |||
    # Generated from mixin/ by mixin/generate: edit mixin/alerts/ and
    # mixin/config.libsonnet, not this file, then run mixin/generate.
    #
    # Alerting rules for ipvs-exporter and ipvs-checker (Prometheus 2.x rule
    # file). What each alert means and what to do: alerts/README.md (the
    # runbook_url annotation of every alert names its section there, behind
    # the mixin's runbookBaseURL; its "Runbook links" section shows how to
    # put the base URL of your own copy in front).
    #
    # Assumptions, as in examples/prometheus/prometheus.yml: the exporter is
    # scraped by job "%(exporterJobName)s", the checker by job "%(checkerJobName)s".
    # Services are named by the labels both binaries share (as node_exporter's
    # ipvs collector has them): proto, local_address, local_port, local_mark
    # (a firewall-mark service: proto="FWM", no local_address, the mark in
    # local_mark); real servers add remote_address and remote_port.
  ||| % mixin._config
  + yaml.manifest(mixin.prometheusAlerts)
