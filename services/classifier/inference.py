"""Category and language from free text in English, Spanish, German and French.

A first lexicon: terms are matched on accent-folded, case-folded words and word prefixes
(so "facturas", "Rechnungen" and "indisponibles" match their stems).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from services.classifier.facts import Inference
from shared.vocabulary import Category

LEXICON: dict[Category, tuple[str, ...]] = {
    Category.BILLING: (
        "invoice",
        "billing",
        "billed",
        "charge",
        "refund",
        "payment",
        "factura",
        "cobro",
        "reembolso",
        "pago",
        "rechnung",
        "abrechnung",
        "gutschrift",
        "zahlung",
        "facture",
        "facturation",
        "rembours",
        "paiement",
        "prelevement",
    ),
    Category.SUBSCRIPTION: (
        "subscription",
        "license",
        "licence",
        "seat",
        "renewal",
        "cancel",
        "upgrade plan",
        "suscripcion",
        "licencia",
        "renovacion",
        "cancelar",
        "abonnement",
        "lizenz",
        "kundig",
        "verlanger",
        "abonnement",
        "resili",
        "renouvel",
    ),
    Category.CONFIGURATION: (
        "configure",
        "configuration",
        "setting",
        "policy",
        "permission",
        "mfa",
        "dns record",
        "configurar",
        "configuracion",
        "ajuste",
        "permiso",
        "politica",
        "konfigur",
        "einstellung",
        "berechtigung",
        "richtlinie",
        "parametr",
        "autorisation",
        "strategie",
    ),
    Category.HOW_TO: (
        "how do i",
        "how to",
        "how can",
        "como puedo",
        "como se",
        "wie kann",
        "wie richte",
        "comment faire",
        "comment puis",
    ),
    Category.SERVICE_UNAVAILABLE: (
        "down",
        "unavailable",
        "not available",
        "cannot connect",
        "can't connect",
        "outage",
        "no disponible",
        "caido",
        "sin servicio",
        "no funciona",
        "nicht verfugbar",
        "ausfall",
        "nicht erreichbar",
        "indisponible",
        "panne",
        "inaccessible",
        "ne fonctionne",
    ),
    Category.BUG: (
        "bug",
        "error message",
        "crash",
        "glitch",
        "broken",
        "displays wrong",
        "fallo",
        "error",
        "se bloquea",
        "fehler",
        "absturz",
        "falsch angezeigt",
        "plantage",
        "erreur",
        "defaut",
    ),
    Category.UNDOCUMENTED_BEHAVIOR: (
        "undocumented",
        "not as documented",
        "differs from documentation",
        "service description",
        "no documentado",
        "distinto a la documentacion",
        "nicht dokumentiert",
        "dienstbeschreibung",
        "non documente",
        "description du service",
    ),
    Category.NETWORK_OUTAGE: (
        "network outage",
        "packet loss",
        "latency",
        "network",
        "red caida",
        "perdida de paquetes",
        "latencia",
        "netzwerk",
        "paketverlust",
        "latenz",
        "reseau",
        "perte de paquets",
        "latence",
    ),
    Category.COMMERCIAL: (
        "partner agreement",
        "incentive",
        "margin",
        "price list",
        "acuerdo de partner",
        "incentivo",
        "margen",
        "partnervertrag",
        "marge",
        "preisliste",
        "accord partenaire",
        "remuneration",
        "grille tarifaire",
    ),
}

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is not with our for from this that cannot users".split()),
    "es": frozenset("el la los las de que no con para una por nuestro usuarios".split()),
    "de": frozenset("der die das und ist nicht mit fur ein eine wir unsere benutzer".split()),
    "fr": frozenset("le la les des et est pas avec pour une nous nos utilisateurs".split()),
}

_WORD = re.compile(r"[a-z0-9']+")


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Verfügbar" and "verfugbar" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def detect_language(text: str) -> str | None:
    words = _WORD.findall(fold(text))
    scores = {lang: sum(w in stops for w in words) for lang, stops in STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > 0 else None


def infer(title: str, description: str) -> Inference:
    """The most evident category with the matched terms; ``category=None`` when nothing matches."""
    text = fold(f"{title} {description}")
    padded = f" {' '.join(_WORD.findall(text))} "
    hits: Counter[Category] = Counter()
    evidence: dict[Category, list[str]] = {}
    for category, terms in LEXICON.items():
        for term in terms:
            if f" {term}" in padded:
                hits[category] += 1
                evidence.setdefault(category, []).append(term)
    language = detect_language(text)
    if not hits:
        return Inference(category=None, language=language)
    ranked = hits.most_common()
    best, count = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    confidence = round(count / (count + runner_up), 2)
    return Inference(best, language, tuple(evidence[best]), confidence)
