//! Email over SMTP (lettre): one plain-text message per notification. The server comes
//! as an SMTP URL — `smtp://host:25`, `smtp://user:pass@host:587?tls=required` or
//! `smtps://host:465` — so credentials can live in an environment variable with it.

use fundguard_alerts::Notification;
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};

use crate::{Channel, Report, SendError};

pub struct Email {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// Checks the URL and addresses now, so a typo fails at start-up, not at 3 a.m.
    pub fn new(url: &str, from: &str, to: &[String]) -> Result<Email, String> {
        let transport = SmtpTransport::from_url(url).map_err(|e| format!("SMTP URL: {e}"))?.build();
        let from = from.parse().map_err(|e| format!("`from` {from}: {e}"))?;
        let to =
            to.iter().map(|t| t.parse().map_err(|e| format!("`to` {t}: {e}"))).collect::<Result<Vec<Mailbox>, _>>()?;
        if to.is_empty() {
            return Err("`to` lists no address".into());
        }
        Ok(Email { transport, from, to })
    }
}

impl Email {
    fn deliver(&self, message: Result<Message, lettre::error::Error>) -> Result<(), SendError> {
        let message =
            message.map_err(|e| SendError { message: format!("building the email: {e}"), permanent: true })?;
        self.transport.send(&message).map(|_| ()).map_err(|e| SendError {
            message: format!("SMTP: {e}"),
            // A permanent SMTP refusal (5xx) will not pass on retry; the rest may.
            permanent: e.is_permanent(),
        })
    }

    fn builder(&self, subject: String) -> lettre::message::MessageBuilder {
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            message = message.to(to.clone());
        }
        message
    }
}

impl Channel for Email {
    /// The report as one message with a plain-text and an HTML part.
    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        let body = lettre::message::MultiPart::alternative_plain_html(report.text.clone(), report.html.clone());
        self.deliver(self.builder(format!("[fundguard] {}", report.title)).multipart(body))
    }

    fn send(&self, batch: &[&Notification], text: &str) -> Result<(), SendError> {
        let Some(n) = batch.first() else { return Ok(()) };
        let a = &n.alert;
        let subject = match batch.len() {
            1 => format!("[fundguard {}] {} {}: {}", a.severity.as_str(), a.rule, n.event, a.message),
            count => format!("[fundguard {}] {} {}: {count} alerts", a.severity.as_str(), a.rule, n.event),
        };
        let message = self.builder(subject).header(lettre::message::header::ContentType::TEXT_PLAIN).body(format!(
            "{text}\n\nDelivery: {}\n",
            batch.iter().map(|n| n.id.to_string()).collect::<Vec<_>>().join(", ")
        ));
        self.deliver(message)
    }
}
