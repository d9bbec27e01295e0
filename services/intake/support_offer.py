"""The partner's support offer as customers read it, in English, Spanish, German or French."""

from __future__ import annotations

from collections.abc import Sequence

from services.intake.schemas_partner import SupportOffer

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "types": "Support",
        "hours": "Hours",
        "contact": "Contact",
        "prices": "Prices",
        "none": "no support hours published",
        "break_fix": "break/fix",
        "how_to": "how-to questions",
        "billing": "billing",
        "onboarding": "onboarding",
        "advisory": "advisory",
        "managed": "managed services",
        "phone": "phone",
        "email": "email",
        "portal": "portal",
        "chat": "chat",
        "per_incident": "per incident",
        "per_hour": "per hour",
        "per_month": "per month",
        "per_user_month": "per user per month",
        "included": "included",
    },
    "es": {
        "types": "Soporte",
        "hours": "Horario",
        "contact": "Contacto",
        "prices": "Precios",
        "none": "sin horario de soporte publicado",
        "break_fix": "resolución de averías",
        "how_to": "consultas de uso",
        "billing": "facturación",
        "onboarding": "incorporación",
        "advisory": "asesoramiento",
        "managed": "servicios gestionados",
        "phone": "teléfono",
        "email": "correo electrónico",
        "portal": "portal",
        "chat": "chat",
        "per_incident": "por incidencia",
        "per_hour": "por hora",
        "per_month": "al mes",
        "per_user_month": "por usuario y mes",
        "included": "incluido",
    },
    "de": {
        "types": "Support",
        "hours": "Zeiten",
        "contact": "Kontakt",
        "prices": "Preise",
        "none": "keine Supportzeiten veröffentlicht",
        "break_fix": "Störungsbehebung",
        "how_to": "Anwendungsfragen",
        "billing": "Abrechnung",
        "onboarding": "Einrichtung",
        "advisory": "Beratung",
        "managed": "Managed Services",
        "phone": "Telefon",
        "email": "E-Mail",
        "portal": "Portal",
        "chat": "Chat",
        "per_incident": "pro Vorfall",
        "per_hour": "pro Stunde",
        "per_month": "pro Monat",
        "per_user_month": "pro Benutzer und Monat",
        "included": "inklusive",
    },
    "fr": {
        "types": "Support",
        "hours": "Horaires",
        "contact": "Contact",
        "prices": "Tarifs",
        "none": "aucun horaire de support publié",
        "break_fix": "résolution d'incidents",
        "how_to": "questions d'utilisation",
        "billing": "facturation",
        "onboarding": "mise en service",
        "advisory": "conseil",
        "managed": "services managés",
        "phone": "téléphone",
        "email": "e-mail",
        "portal": "portail",
        "chat": "chat",
        "per_incident": "par incident",
        "per_hour": "par heure",
        "per_month": "par mois",
        "per_user_month": "par utilisateur et par mois",
        "included": "inclus",
    },
}
DAY_NAMES = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "fr": ("lun", "mar", "mer", "jeu", "ven", "sam", "dim"),
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DASH = "\u2013"


def describe(offer: SupportOffer, locale: str) -> str:
    """One sentence per part, e.g. ``Hours: Mon-Fri 08:00-18:00 (Europe/Berlin)``."""
    language = locale[:2].lower() if locale[:2].lower() in LABELS else "en"
    text = LABELS[language]
    parts = []
    if offer.support_types:
        parts.append(f"{text['types']}: " + ", ".join(text[t] for t in offer.support_types))
    if offer.hours is not None:
        hours = offer.hours
        parts.append(
            f"{text['hours']}: {_days(hours.days, language)} "
            f"{hours.start:%H:%M}{DASH}{hours.end:%H:%M} ({hours.timezone})"
        )
    else:
        parts.append(f"{text['hours']}: {text['none']}")
    if offer.contact_methods:
        parts.append(
            f"{text['contact']}: "
            + "; ".join(f"{text[c.kind]} {c.value}" for c in offer.contact_methods)
        )
    if offer.prices:
        parts.append(
            f"{text['prices']}: "
            + "; ".join(
                f"{p.item}: {p.amount:.2f} {p.currency} {text[p.unit]}" for p in offer.prices
            )
        )
    return ". ".join(parts) + "."


def _days(days: Sequence[str], language: str) -> str:
    """Consecutive days as a range: ``Mon-Fri``, ``Mon-Wed, Sat`` (with en dashes)."""
    names = DAY_NAMES[language]
    indexes = sorted(DAYS.index(d) for d in days)
    runs: list[list[int]] = []
    for index in indexes:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(
        names[run[0]] if len(run) == 1 else f"{names[run[0]]}{DASH}{names[run[-1]]}" for run in runs
    )
