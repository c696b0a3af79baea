// Every alert, in three groups, each with a runbook_url: the section of
// alerts/README.md named after the alert (as GitHub, GitLab and Gitea name
// heading anchors), behind _config.runbookBaseURL.
(import 'daemons.libsonnet')
+ (import 'real-servers.libsonnet')
+ (import 'director.libsonnet')
+ {
  prometheusAlerts+:: {
    groups: [
      group {
        rules: [
          rule {
            annotations+: {
              runbook_url: $._config.runbookBaseURL + 'alerts/README.md#' + std.asciiLower(rule.alert),
            },
          }
          for rule in group.rules
        ],
      }
      for group in super.groups
    ],
  },
}
