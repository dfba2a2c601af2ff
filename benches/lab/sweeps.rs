//! The open-loop latency sweeps of a run: their plans and tables.

use std::time::Duration;

use crate::cli::{self, Options};
use crate::echo::beyond_select;
use crate::report;
use crate::results::Results;
use crate::servers::NGINX;
use crate::{http, latency};

/// One open-loop sweep of the run: its plan, contenders and the capacity it is
/// scaled to.
pub struct LatencyPlan {
    pub plan: latency::Plan,
    pub contenders: Vec<String>,
    pub capacity: f64,
}

/// Calibrates each latency sub-workload (closed loop against epoll-et) and plans
/// its offered loads; a calibration that fails marks the sub-workload failed.
pub fn latency_plans(
    o: &Options,
    server_cpu: Option<usize>,
    site: Option<&http::Site>,
    have_nginx: bool,
    res: &mut Results,
) -> Vec<LatencyPlan> {
    let mut out = Vec::new();
    for w in cli::LATENCY_WORKLOADS {
        let (conns, mut contenders) = if w == "latency-http" {
            (o.http_connections, o.http_contenders())
        } else {
            (o.connections, o.echo_contenders())
        };
        if w == "latency-http" && !have_nginx && contenders.iter().any(|c| c == NGINX) {
            res.missing_tool(w, NGINX, "nginx");
            contenders.retain(|c| c != NGINX);
        }
        contenders.retain(|c| !beyond_select(c, conns));
        if contenders.is_empty() {
            continue;
        }
        let time = (o.sweep_duration * 2).max(Duration::from_millis(200));
        match latency::calibrate(w, conns, time, site, server_cpu) {
            Ok(capacity) => {
                let rates = latency::rates(capacity, &o.load_fractions);
                eprintln!("lab: {w}: capacity {capacity:.0}/s closed loop; offering {rates:?}");
                out.push(LatencyPlan {
                    plan: latency::Plan {
                        workload: w,
                        conns,
                        rates,
                        point: o.sweep_duration,
                        warmup: o.warmup,
                        max_ops: o.max_ops,
                        server_cpu,
                    },
                    contenders,
                    capacity,
                });
            }
            Err(e) => {
                for c in &contenders {
                    res.add(w, c, None, Err(format!("calibration: {e}")));
                }
            }
        }
    }
    out
}

pub fn print_latency_tables(lat: &[LatencyPlan], res: &Results) {
    for l in lat {
        let what = if l.plan.workload == "latency-http" {
            "HTTP `GET /plaintext` (nginx: `return 200`)"
        } else {
            "echo, 64 B"
        };
        println!(
            "## Open-loop latency: {what}, {} connections (`{}`)\n",
            l.plan.conns, l.plan.workload
        );
        println!(
            "- offered load: a constant rate, each connection sending on a schedule; latency \
             counted from the intended send time (coordinated omission corrected, as wrk2); \
             {:.1} s per point; 100% = {:.0}/s, the closed-loop rate of this load generator \
             against epoll-et at the start of the run\n",
            l.plan.point.as_secs_f64(),
            l.capacity
        );
        println!(
            "{}",
            report::latency_tables(&res.of(l.plan.workload), &l.contenders, &l.plan.rates)
        );
    }
}
