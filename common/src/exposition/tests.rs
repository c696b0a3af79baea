use super::*;

#[test]
fn negotiation_follows_the_accept_header() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    let low =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(low)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    assert_eq!(Format::negotiate(None), Format::Text);
    for refused in [
        "application/openmetrics-text; q=0",
        "application/openmetrics-text;q=0",
    ] {
        assert_eq!(Format::negotiate(Some(refused)), Format::Text, "{refused}");
    }
}

#[test]
fn label_values_from_outside_are_escaped() {
    let mut labels = LabelSet::new();
    labels.add("port", 80);
    labels.add_escaped("netns", "/run/netns/a \"b\"\\c\nd");
    assert_eq!(
        labels.closed(),
        r#"{port="80",netns="/run/netns/a \"b\"\\c\nd"}"#
    );
    assert_eq!(LabelSet::new().closed(), "");
    let longer = LabelSet::new().with("a", 1).with("b", "x");
    assert_eq!(longer.closed(), r#"{a="1",b="x"}"#);
}

fn written(format: Format, families: &[&Family]) -> String {
    into_text(|sink| {
        let mut out = Out::new(sink);
        for family in families {
            family.encode(format, &mut out);
        }
        out.finish(format)
    })
}

#[test]
fn the_formats_differ_in_headers_and_the_end_only() {
    let mut requests = Family::new("x_requests_total", Kind::Counter, "Requests.");
    requests.push(&LabelSet::new().with("code", 200), 7);
    let mut info = Family::new("x_build_info", Kind::Info, "Build.");
    info.push(&LabelSet::new().with("version", "1.0"), 1);
    let mut age = Family::new("x_age_seconds", Kind::Gauge, "Age.").with_unit("seconds");
    age.push(&LabelSet::new(), 2.5);
    let empty = Family::new("x_empty", Kind::Gauge, "Nothing yet.");
    let described = Family::new("x_described", Kind::Gauge, "Nothing yet.").described_when_empty();
    let families = [&requests, &info, &age, &empty, &described];
    assert_eq!(
        written(Format::Text, &families),
        "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n\
         x_requests_total{code=\"200\"} 7\n\
         # HELP x_build_info Build.\n# TYPE x_build_info gauge\n\
         x_build_info{version=\"1.0\"} 1\n\
         # HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\nx_age_seconds 2.5\n\
         # HELP x_described Nothing yet.\n# TYPE x_described gauge\n"
    );
    assert_eq!(
        written(Format::OpenMetrics, &families),
        "# HELP x_requests Requests.\n# TYPE x_requests counter\n\
         x_requests_total{code=\"200\"} 7\n\
         # HELP x_build Build.\n# TYPE x_build info\n\
         x_build_info{version=\"1.0\"} 1\n\
         # HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\n# UNIT x_age_seconds seconds\n\
         x_age_seconds 2.5\n\
         # HELP x_described Nothing yet.\n# TYPE x_described gauge\n# EOF\n"
    );
}

#[test]
fn a_family_handed_over_as_it_is_built_is_written_as_one_encoded_whole() {
    // Enough samples for several chunks, in both formats.
    for format in [Format::Text, Format::OpenMetrics] {
        let fill = |family: &mut Family, i: u32| {
            family.push(
                &LabelSet::new().with("i", i).with("pad", "x".repeat(100)),
                i,
            )
        };
        let mut whole = Family::new("x_total", Kind::Counter, "Things.");
        for i in 0..3000 {
            fill(&mut whole, i);
        }
        let expected = written(format, &[&whole]);
        let streamed = into_text(|sink| {
            let mut out = Out::new(sink);
            let mut family = Family::new("x_total", Kind::Counter, "Things.");
            for i in 0..3000 {
                fill(&mut family, i);
                family.spill_into(format, &mut out);
            }
            family.encode(format, &mut out);
            out.finish(format)
        });
        assert!(expected.len() > 3 * 64 * 1024, "{}", expected.len());
        assert_eq!(streamed, expected);
        assert_eq!(streamed.matches("# HELP").count(), 1);
    }
    // A family described when empty, handed over with no sample: its
    // header once.
    let streamed = into_text(|sink| {
        let mut out = Out::new(sink);
        let mut family = Family::new("x", Kind::Gauge, "Nothing.").described_when_empty();
        family.spill_into(Format::Text, &mut out);
        family.encode(Format::Text, &mut out);
        out.finish(Format::Text)
    });
    assert_eq!(streamed, "# HELP x Nothing.\n# TYPE x gauge\n");
}

#[test]
fn a_histogram_counts_each_observation_in_its_first_bucket_cumulated() {
    static BOUNDS: [f64; 3] = [0.001, 0.5, 1.0];
    let mut histogram = Histogram::new(&BOUNDS);
    for value in [0.0005, 0.001, 0.25, 3.0] {
        histogram.observe(value);
    }
    assert_eq!(histogram.count(), 4);
    let mut family = Family::new("x_seconds", Kind::Histogram, "Durations.");
    family.push_histogram(&LabelSet::new().with("phase", "tls"), &histogram);
    family.push_histogram(&LabelSet::new(), &Histogram::new(&BOUNDS));
    assert_eq!(
        written(Format::Text, &[&family]),
        "# HELP x_seconds Durations.\n# TYPE x_seconds histogram\n\
         x_seconds_sum{phase=\"tls\"} 3.2515\n\
         x_seconds_count{phase=\"tls\"} 4\n\
         x_seconds_bucket{le=\"0.001\",phase=\"tls\"} 2\n\
         x_seconds_bucket{le=\"0.5\",phase=\"tls\"} 3\n\
         x_seconds_bucket{le=\"1.0\",phase=\"tls\"} 3\n\
         x_seconds_bucket{le=\"+Inf\",phase=\"tls\"} 4\n\
         x_seconds_sum 0.0\n\
         x_seconds_count 0\n\
         x_seconds_bucket{le=\"0.001\"} 0\n\
         x_seconds_bucket{le=\"0.5\"} 0\n\
         x_seconds_bucket{le=\"1.0\"} 0\n\
         x_seconds_bucket{le=\"+Inf\"} 0\n"
    );
    // NaN goes to +Inf, as prometheus-client and client_golang count it.
    let mut nan = Histogram::new(&BOUNDS);
    nan.observe(f64::NAN);
    let mut family = Family::new("x_seconds", Kind::Histogram, "Durations.");
    family.push_histogram(&LabelSet::new(), &nan);
    let text = written(Format::Text, &[&family]);
    assert!(
        text.contains("x_seconds_bucket{le=\"1.0\"} 0\n")
            && text.contains("x_seconds_bucket{le=\"+Inf\"} 1\n"),
        "{text}"
    );
}

#[test]
fn histograms_of_other_bounds_in_one_family_each_have_their_own_le() {
    static FINE: [f64; 2] = [0.1, 0.2];
    static COARSE: [f64; 1] = [10.0];
    let mut family = Family::new("x_seconds", Kind::Histogram, "Durations.");
    for bounds in [&FINE[..], &COARSE, &FINE] {
        family.push_histogram(&LabelSet::new(), &Histogram::new(bounds));
    }
    let le: Vec<_> = written(Format::Text, &[&family])
        .lines()
        .filter_map(|line| line.strip_prefix("x_seconds_bucket{le=\""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        le,
        ["0.1", "0.2", "+Inf", "10.0", "+Inf", "0.1", "0.2", "+Inf"]
    );
}

#[test]
fn a_sink_error_is_returned_and_nothing_more_written() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut family = Family::new("x", Kind::Gauge, "X.");
    family.push(&LabelSet::new(), 1);
    let mut sink = Broken;
    let mut out = Out::new(&mut sink);
    family.encode(Format::Text, &mut out);
    let error = out.finish(Format::Text).expect_err("the sink's error");
    assert_eq!(error.to_string(), "closed");
}
