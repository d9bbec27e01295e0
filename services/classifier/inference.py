"""Category and language from free text in English, Spanish, German and French.

The lexicon lists, per language and category, terms matched on accent-folded, case-folded text
at the start of a word (so "facturas", "Rechnungen" and "indisponibles" match their stems).
A term may carry a weight (``term*2``) when it is more telling than a single word. Every hit is
evidence for the language the term belongs to. The category counts the terms of the language
the text is in, and English ones in any language (desks write "forwarding" and "outage" in all
four): a word of another language's term ("imported" begins like Spanish "importe") is none.
A German term marked ``~`` is found inside a word too, as the last noun of a compound. A
failure told with its negation apart from its verb ("Outlook öffnet bei allen Benutzern nicht
mehr", "users can no longer sign in") is found by :mod:`services.classifier.clauses`. A how-to
question yields to a failure the text also tells of ("How do we get mail back? Exchange is
down"): that may be Microsoft's to fix, and the helpdesk would only answer the question.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict

from services.classifier.clauses import clause_hits
from services.classifier.facts import Inference
from shared.vocabulary import MICROSOFT_TECHNICAL_CATEGORIES, Category

C = Category
LEXICON: dict[str, dict[Category, str]] = {
    "en": {
        C.BILLING: "invoice*2|billing|billed|charge|refund*2|payment|credit note*2|overcharge|"
        "bill*2",
        C.SUBSCRIPTION: "subscription*2|licence|license|seats|renewal|cancel|upgrade|trial*2|"
        "annual plan*2|"
        "annual commitment*3|annual term*2|monthly term*2|year term*2|business basic|"
        "business standard|business premium",
        C.CONFIGURATION: "configure*2|configured|configuration*2|setting|policy|permission|"
        "dkim|spf*2|dmarc*2|mx record*2|dns|retention policy|mfa|conditional access|"
        "forwarding*2|forward all*2|"
        "forward mail*2|forward email*2|shared mailbox*2|"
        "full access*2|auto-accept*2|automatically accept*2|edit rights*2|access rights*2|"
        "delegate*2|mailbox permission*2|distribution list*2|out of office*2|password|"
        "locked out*2|unblock*2|new starter*2|new joiner*2|new user*2|new employee*2|onboarding*2|"
        "offboarding*2|leaver*2|send-as*2|send as*2|mailbox access*2|create a mailbox*2|"
        "create an account*2|alias*2|signature*2|intune|prevent users*2|stop users*2|"
        "block users*2|block access*2|don't want users*2|do not want users*2|don't want guests*2|"
        "do not want guests*2|external sharing*2|sharing settings*2|inbox rule*2|"
        "transport rule*2|mail flow rule*2|legacy auth*2|basic auth*2|disable|enable|turn off",
        C.HOW_TO: "how do*3|how to*3|how can*3|asks how*3|explain how*3|"
        "is there a way*3|there is a way*2|is it possible to*2|steps to*2|the steps*2|"
        "procedure to*2|procedure for*2|want to know*2|wants to know*2|like to know*2|"
        "best way*2|what's the way*3|what is the way*3|how does*3|how should*3|"
        "what do we need*3|what do i need*3|what should we*3|recommend*2|best practice*2|"
        "asks if*3|asking if*3|wondering if*3|wonders if*3|needs to know*2|need to know*2|"
        "where are*2|where is*2|where do*2|where do i*3|where can*3|can't find|cannot find",
        C.UNDOCUMENTED_BEHAVIOR: "undocumented*3|not documented*3|as documented*3|documented*2|"
        "service description*2|documentation*2",
        C.SERVICE_UNAVAILABLE: "down *2|downtime*2|unavailable*2|not available*2|cannot connect*2|"
        "nobody can*2|no one can*2|can't log in*2|cannot log in*2|couldn't sign you in*2|"
        "can't connect*2|unreachable*2|outage|cannot be reached*2|nobody can sign in*2|"
        "not working|stopped working*2|isn't working|doesn't work|does not work|"
        "not receiving*2|not getting email|not getting any email|not getting external|"
        "not getting mail|not getting any mail|does not open*2|doesn't open*2|"
        "keeps dropping*2|keep dropping*2|calls drop|dropped calls|keeps disconnecting*2|"
        "keep disconnecting*2|"
        "not syncing*2|won't sync*2|won't load*2|not loading*2|won't open*2|"
        "blank page*2|cannot send*2|"
        "can't send*2|cannot reach*2|can't reach*2|times out*2|timing out*2|cannot access*2|"
        "can't access*2|cant access*2|bouncing*2|bounce back*2|delivery has failed*2|"
        # A server error answered (HTTP 500, 502, 503, 504): the service fails, whatever the
        # word "error" says alone (a bug).
        "error 500*3|error 502*3|error 503*3|error 504*3|500 error*3|502 error*3|503 error*3|"
        "504 error*3|bad gateway*3|"
        "undeliverable*2|not responding*2|not opening*2|couldn't open*2|can't open*2|"
        "cannot open*2|outbox*2|stuck in the outbox*3|stuck in outbox*3",
        C.BUG: "bug*2|error message*2|error|crash*2|glitch*2|broken*2|stuck on*2|stuck in*2|"
        "don't appear*2|doesn't appear*2|do not appear*2|does not appear*2|"
        "displays wrong*2|wrong time|wrong presence|shows the wrong|show the wrong|"
        "showing the wrong|"
        "wrong date*2|duplicate*2|appears twice*2|appear twice*2|"
        "show up twice*2|shows up twice*2|shown twice*2|showing twice*2|"
        "cannot be deleted*2|can't be deleted*2|wrong total*2|shows wrong*2|incorrect total*2|"
        "different total*2|disappear*2|vanish*2|wrong person*2|wrong user*2|"
        "no results*2|hour off*2|hour later*2|hour behind*2",
        C.NETWORK_OUTAGE: "network*2|packet loss*3|latency*3|jitter*3|expressroute|routes",
        C.REGIONAL_MULTITENANT: "tenants*2|multi-tenant*3|regional*2|region|same time|at once|"
        "simultaneous|several customer*2|many customers*2|customers across*2|several of our*2|"
        "multiple clients*2|multiple customers*2|different customers*2|several clients*2|"
        "many clients*2",
        C.COMMERCIAL: "partner agreement*3|partner contract*3|partner discount*3|incentive*3|"
        "margin*2|price list*2|rebate*3",
    },
    "es": {
        C.BILLING: "factura*2|facturacion*2|cobro*2|cobraron*2|cobrado*2|reembolso*3|pago|"
        "importe*2|cargo mensual*2|cargos*2|un cargo*2|tarjeta*2|nota de credito*3|"
        "notas de credito*3",
        C.SUBSCRIPTION: "suscripcion*2|licencias|licencia|renovar|renovacion|cancelar|plan de|"
        "periodo de prueba*2|version de prueba*2|la prueba de*2|plan anual*2|"
        "puestos*2|contratar*2|cambio de plan*2|cambiar de plan*2|cambiar el plan*2",
        C.CONFIGURATION: "configurar*2|configuracion*2|ajuste|permiso|politica|directiva*2|"
        "acceso condicional*2|dns|reglas de|"
        "reenvio*2|reenviar*2|buzon compartido*2|lista de distribucion*2|respuesta automatica*2|"
        "contrasena|restablecer*2|desbloque*2|usuario nuevo*2|nuevo usuario*2|nuevo empleado*2|"
        "crear la cuenta*2|crear una cuenta*2|crear el buzon*2|firma corporativa*2|"
        "firma de correo*2|firma de la empresa*2|autenticacion basica*2|"
        "autenticacion heredada*2|desactivar|deshabilitar|activar",
        C.HOW_TO: "como puedo*3|como se*3|pregunta como*3|saber como*3|es posible*2|"
        "alguna forma*3|alguna manera*3|procedimiento para*2|pasos para*2|que pasos*3|"
        "duda sobre*2|quiere saber*3|quisiera saber*3|gustaria saber*3|recomend*2|recomiend*2|"
        "mejor manera*3|mejor forma*3|que necesitamos*2|"
        "cual es la manera*3|cual es la forma*3|de que manera*3|de que forma*3",
        C.UNDOCUMENTED_BEHAVIOR: "no documentado*3|no esta documentado*3|documentacion*2|"
        "descripcion del servicio*2|como dice*2",
        C.SERVICE_UNAVAILABLE: "no disponible*2|caido*2|caida|sin servicio*2|no funciona*2|"
        "error 500*3|error 502*3|error 503*3|error 504*3|500 error*3|502 error*3|503 error*3|"
        "504 error*3|"
        "nadie puede*2|ningun usuario puede*2|dejo de funcionar*2|dejaron de funcionar*2|"
        "dejado de*2|deja de*2|dejan de*2|"
        "no recibe*2|no sincroniza*2|dejo de sincronizar*2|dejaron de sincronizar*2|"
        "no conecta*2|no abre*2|no se abre*2|pagina en blanco*2|no carga*2|"
        "no se puede enviar*2|no podemos enviar*2|no responde*2|tiempo de espera*2|"
        "no se pueden enviar*2|no pueden enviar*2|bandeja de salida*2|se corta*2|"
        "se desconecta*2",
        C.BUG: "fallo*2|mensaje de error*3|error|se bloquea*2|se cierra*2|se muestra mal*2|"
        "no aparece*2|no aparecen*2|"
        "duplica*2|dos veces*2|no se pueden borrar*2|no se puede borrar*2|desaparec*2|"
        "hora incorrecta*2|hora mal*2|hora equivocada*2|fecha equivocada*2|fecha incorrecta*2|"
        "equivocada|equivocado",
        C.NETWORK_OUTAGE: "red *2|perdida de paquetes*3|latencia*3|jitter*3|expressroute",
        C.REGIONAL_MULTITENANT: "inquilinos*2|multiinquilino*3|regional*2|region|a la vez|"
        "simultaneamente|varios clientes*2|muchos clientes*2|distintos clientes*2",
        C.COMMERCIAL: "acuerdo de partner*3|incentivo*3|margen*2|lista de precios*2|bonificacion*3",
    },
    "de": {
        C.BILLING: "~rechnung*2|~gutschrift*2|berechnet|zahlung|betrag*2|bezahlt*2|"
        "doppelt berechnet*3|doppelt abgebucht*3|"
        "belastet*2|abgebucht*2",
        C.SUBSCRIPTION: "abonnement*2|~lizenz|kundig*2|verlanger|wechsel|platze*2|~testversion*2|"
        "~testphase*2|~jahresabo*2",
        C.CONFIGURATION: "konfigur*2|~einstellung*2|~berechtigung*2|~richtlinie*2|mfa|dns|"
        "weiterleit*2|einrichten|automatisch annehmen*2|freigegebenes postfach*2|vollzugriff*2|"
        "verteilerliste*2|bearbeitungsrecht*2|"
        "~zugriffsrecht*2|leserecht*2|schreibrecht*2|"
        "abwesenheitsnotiz*2|~passwort|entsperr*2|neuer mitarbeiter*2|neue mitarbeiterin*2|"
        "neuen mitarbeiter*2|postfach anlegen*2|anlegen|zur gruppe*2|hinzufugen|"
        "freigabe fur externe*2|~freigabe|~authentifizierung|deaktivier|aktivier|abschalten",
        C.HOW_TO: "wie kann*3|wie konnen*3|wie richte*3|fragt wie*3|wie man*2|mochte wissen*2|"
        "wie geht das*3|kann man*3|stellt man*2|gibt es eine moglichkeit*3|ist es moglich*2|"
        "anleitung*2|wo finde*3|wo landen*3|wo werden*3|wo sind*2|wo kann*3|wissen ob*3|"
        "fragt ob*3|beste weg*3|am besten*2|empfehl*2|was mussen wir*3|was muss ich*3|"
        "wie finde*3|wie erstelle*3|wie lege*3|wie aktiviere*3|welche schritte*3",
        C.UNDOCUMENTED_BEHAVIOR: "nicht dokumentiert*3|dokumentiert*2|dokumentation*2|"
        "dienstbeschreibung*2",
        C.SERVICE_UNAVAILABLE: "nicht verfugbar*2|~ausfall*2|nicht erreichbar*2|niemand kann*2|"
        "fehler 500*3|fehler 502*3|fehler 503*3|fehler 504*3|"
        "kann niemand*2|kein benutzer kann*2|funktioniert nicht|geht nicht|empfangt keine*2|"
        "empfangen keine*2|synchronisiert nicht*2|nicht mehr synchronisiert*2|laden nicht*2|"
        "ladt nicht*2|offnet nicht*2|leere seite*2|keine verbindung*2|startet nicht*2|"
        "nicht mehr offnen*2|nicht offnen*2|schlagen fehl*2|schlagt fehl*2|"
        "verbindet sich nicht*2|verbindet nicht*2|getrennt|kommen nicht an*2|kommen keine*2|"
        "fehlschlag*2|postausgang*2|"
        "keine anmeldung*2|kein zugriff*2|nicht mehr anmelden*2|nicht anmelden*2|"
        # The subject comes between the verb and "keine" ("empfangen alle Benutzer keine
        # E-Mails"): the missing mail itself is the term.
        "keine e-mail|keine mails|keine externen e-mail*2|keine externen mails*2|"
        "keine neuen e-mail*2|keine neuen mails*2|keine neuen nachrichten*2|keine eingehenden*2|"
        "keine nachrichten",
        C.BUG: "~fehler*2|~fehlermeldung*3|~absturz*2|sturzt*2|falsch angezeigt*2|bleibt hangen|"
        "erscheint zweimal*2|erscheint doppelt*2|doppelt angezeigt*2|doppelt|zeigt das falsche|"
        "zeigt die falsche|zeigt den falschen|zeigen das falsche|zeigen die falsche|"
        "zeigen den falschen|falsches datum*2|"
        "lasst sich nicht loschen*2|verschwind*2|verschwunden*2|findet nichts*2|"
        "keine ergebnisse*2|liefert keine*2|falsch dargestellt*2|"
        "erscheinen nicht*2|erscheint nicht*2",
        C.NETWORK_OUTAGE: "~netzwerk*2|paketverlust*3|latenz*3|jitter*3|expressroute|routen",
        C.REGIONAL_MULTITENANT: "tenants*2|mandantenubergreifend*3|regional*2|region|"
        "gleichzeitig|mehrere kunden*2|mehreren kunden*2|mehrere unserer kunden*2|"
        "mehreren unserer kunden*2|viele kunden*2|drei kunden*2",
        C.COMMERCIAL: "partnervertrag*3|incentive*3|marge*2|preisliste*2|bonus*2",
    },
    "fr": {
        C.BILLING: "facture*2|facturation*2|factures*2|rembourse*2|paiement|montant*2|preleve*2|"
        "l'avoir*3|un avoir*3",
        C.SUBSCRIPTION: "abonnement*2|licences|licence|resili*2|renouvel|formule|essai*2|"
        "postes de plus*2|postes supplementaires*2",
        C.CONFIGURATION: "configurer*2|parametr*2|autorisation*2|strategie*2|dns|"
        "transfert des mails*2|transferer les mails*2|transferer tous les mails*2|redirection*2|"
        "boite partagee*2|boite aux lettres partagee*2|acces complet*2|liste de distribution*2|"
        "reponse automatique*2|mot de passe|reinitialiser*2|debloqu*2|nouvel arrivant*2|"
        "nouvelle arrivante*2|nouveau collaborateur*2|nouvel utilisateur*2|creer une boite*2|"
        "creer un compte*2|droits sur*2|droits d'acces*2|droits de modification*2|"
        "droits de lecture*2|droits d'edition*2|droits d'ecriture*2|regle de*2|regles de*2|"
        "une regle*2|"
        "authentification de base*2|authentification heritee*2|desactiver|activer",
        C.HOW_TO: "comment faire*3|comment puis*3|demande comment*3|comment restaurer*3|"
        "savoir comment*3|comment ajouter*3|est-il possible*2|peut-on*3|existe-t-il*2|"
        "un moyen*2|procedure pour*2|comment *2|les etapes*2|meilleure solution*3|"
        "meilleure facon*3|meilleur moyen*3|que faut-il*3|recommand*2|conseill*2|"
        "savoir s'il*3|voudrait savoir*3|aimerait savoir*3|souhaite savoir*3|ou se trouve*3|"
        "ou trouver*3",
        C.UNDOCUMENTED_BEHAVIOR: "non documente*3|documente*2|documentation*2|"
        "description du service*2",
        C.SERVICE_UNAVAILABLE: "indisponible*2|panne*2|hors service*2|aucun mail*2|inaccessible*2|"
        "erreur 500*3|erreur 502*3|erreur 503*3|erreur 504*3|500 erreur*3|502 erreur*3|"
        "503 erreur*3|504 erreur*3|"
        "ne fonctionne*2|"
        "personne ne peut*2|aucun utilisateur ne*2|ne marche|ne recoit*2|ne recoivent*2|"
        "ne synchronise*2|ne se synchronise*2|ne sont plus synchronises*2|ne charge*2|"
        "ne se charge*2|ne s'ouvre*2|page blanche*2|impossible d'envoyer*2|"
        "impossible de se connecter*2|n'arrive pas a se connecter*2|ne se lance*2|ne demarre*2|"
        "plus personne*2|impossible d'acceder*2|se coupe*2|se deconnecte*2|boite d'envoi*2",
        C.BUG: "erreur*2|message d'erreur*3|bogue*2|plante*2|plantage*2|defaut*2|se fige*2|"
        "n'apparai*2|"
        "se ferme*2|en double*2|deux fois*2|ne peut pas etre supprime*2|dispara*2|disparu*2|"
        "decale*2|dates incorrectes*2|mauvaise date*2|mauvaise heure*2|affiche une mauvaise|"
        "affichent une mauvaise|affiche la mauvaise|affichent la mauvaise",
        C.NETWORK_OUTAGE: "reseau*2|perte de paquets*3|latence*3|gigue*3|jitter*3|"
        "expressroute|routes",
        C.REGIONAL_MULTITENANT: "locataires*2|multi-locataires*3|regional*2|region|"
        "en meme temps|simultanement|plusieurs clients*2|nombreux clients*2",
        C.COMMERCIAL: "accord partenaire*3|contrat partenaire*3|remise partenaire*3|"
        "incitation*3|marge*2|grille tarifaire*2|prime*2",
    },
}

# Frequent words that tell the language, and letters only one of the four uses.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the and is not with our for from this that cannot users since every to of are we "
        "about when have has were been they which after would there what".split()
    ),
    "es": frozenset(
        "el los las que con para una por nuestro usuarios desde hay cuando del pero muy esta "
        "este tiene tienen nuestra nuestros ya al sin hemos han hace".split()
    ),
    "de": frozenset(
        "der die das und ist nicht mit fur ein eine wir unsere seit bitte von auf bei den dem "
        "im zu sind wird werden keine alle aller oder wenn sich auch noch".split()
    ),
    "fr": frozenset(
        "le les des et est pas avec pour une nous nos depuis aucun vers du au aux sur mais dans "
        "ne il ils elle sont tous toutes leur leurs cette ce".split()
    ),
}
LETTERS = {"es": "ñ¿¡", "de": "äöüß", "fr": "èêçàùâîôë"}

_WORD = re.compile(r"[a-z0-9'-]+")
# Addresses and links name things ("facturation@", ".../sites/billing"): they tell nothing.
_NAMES = re.compile(r"\S*(?:@|://)\S*")


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Verfügbar" and "verfugbar" compare equal; typographic
    apostrophes become plain ones."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():  # no accents to strip: the common case
        return decomposed
    return _NON_ASCII.sub(_unless_combining, decomposed)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _unless_combining(match: re.Match[str]) -> str:
    """The character matched, nothing when it is a combining mark (an accent), and a plain
    apostrophe for a typographic one (as word processors write "can't" and "d'envoyer")."""
    character = match[0]
    if unicodedata.combining(character):
        return ""
    return "'" if character in _APOSTROPHES else character


_APOSTROPHES = frozenset("\u2019\u2018\u02bc")  # right, left quote; modifier letter

# French elision: "l'abonnement" and "d'erreur" are two words, so "abonnement" is found at the
# start of one. English contractions ("can't", "it's") have letters before their apostrophe.
_ELIDED = re.compile(r"(?<![a-z0-9'-])(qu|[cdjlmnst])'(?=[a-z])")


def _unelide(folded: str) -> str:
    return _ELIDED.sub(r"\1' ", folded) if "'" in folded else folded


Term = tuple[str, Category, str, float]  # language, category, folded term, weight


@functools.cache
def _lexicon() -> tuple[tuple[Term, ...], frozenset[int]]:
    """Every lexicon entry, and the positions of those marked ``~``, found inside words too:
    German joins nouns, so "Registrierungseinstellungen" is a setting and "Anmeldefehler" an
    error."""
    entries: list[Term] = []
    inside: set[int] = set()
    for language, categories in LEXICON.items():
        for category, spec in categories.items():
            for item in spec.split("|"):
                if item.startswith("~"):
                    inside.add(len(entries))
                term, _, weight = item.removeprefix("~").partition("*")
                entries.append((language, category, _unelide(fold(term)), float(weight or 1)))
    return tuple(entries), frozenset(inside)


_KEY = 3  # every folded term is at least this long


@functools.cache
def _by_start() -> dict[str, tuple[int, ...]]:
    """The positions in :func:`_lexicon` of the terms beginning with each ``_KEY`` characters."""
    starts: defaultdict[str, list[int]] = defaultdict(list)
    for position, (_, _, term, _) in enumerate(_lexicon()[0]):
        if len(term) < _KEY:
            raise ValueError(f"lexicon term {term!r} is shorter than {_KEY} characters")
        starts[term[:_KEY]].append(position)
    return {start: tuple(positions) for start, positions in starts.items()}


def _hits(padded: str, words: list[str]) -> list[Term]:
    """The terms found at the start of a word of ``padded`` (or anywhere, those marked ``~``),
    in lexicon order. Only terms beginning like one of its words are looked for, a few of the
    lexicon's hundreds, and the few marked ones."""
    by_start = _by_start()
    candidates: set[int] = set()
    at = 1
    for word in words:
        candidates.update(by_start.get(padded[at : at + _KEY], ()))
        at += len(word) + 1
    terms, inside = _lexicon()
    candidates.update(i for i in inside if terms[i][2] in padded)
    return [
        terms[i]
        for i in sorted(candidates)
        if (terms[i][2] if i in inside else f" {terms[i][2]}") in padded
    ]


# The commonest how-to questions, which no list of words covers: Spanish "¿cómo" and "dónde"
# (the accent tells the question from "como", "as"), "¿se puede …?" (not "no se puede …", a
# failure), French "où" ("ou" is "or") and German "wie" with a verb and its subject.
# (language, pattern, whether it reads the folded text rather than the text as written)
_QUESTIONS = (
    ("es", re.compile(r"\b(?:cómo|dónde)\b|¿\s*(?:se puede|es posible)"), False),
    ("fr", re.compile(r"\boù\b"), False),
    ("de", re.compile(r" wie [a-z]+ (?:ich|wir|man|er|sie|es|du|ihr) "), True),
)


def _questions(raw: str, padded: str) -> list[Term]:
    """A how-to hit, weight 2, for each language whose question form the text has."""
    composed = unicodedata.normalize("NFC", raw.casefold())
    found = []
    for language, pattern, folded in _QUESTIONS:
        if match := pattern.search(padded if folded else composed):
            found.append((language, Category.HOW_TO, fold(match[0]).strip(), 2.0))
    return found


def infer(title: str, description: str, *, language_hint: str | None = None) -> Inference:
    """The most evident category and language, with the matched terms.

    ``category=None`` when no term matches: the caller asks rather than guesses.
    """
    raw = f"{title} {description}"
    named = _NAMES.sub(" ", raw) if "@" in raw or "://" in raw else raw
    folded = _unelide(fold(named))
    words = _WORD.findall(folded)
    padded = f" {' '.join(words)} "
    languages: defaultdict[str, float] = defaultdict(float)
    hits = _hits(padded, words) + _questions(raw, padded) + clause_hits(folded, words)
    for language, _, term, weight in hits:
        # A word that begins like a shorter term of another language ("cancelar", "cancel")
        # tells the longer term's language only, and one that several languages list alike
        # ("error", "licence") tells none of them.
        if not any(o != language and t.startswith(term) for o, _, t, _ in hits):
            languages[language] += weight
    detected = _language(raw, words, languages, language_hint)
    matched: dict[Category, dict[str, float]] = {}
    for language, category, term, weight in hits:
        if detected is not None and language not in (detected, "en"):
            continue  # another language's term (see the module's docstring)
        terms = matched.setdefault(category, {})
        terms[term.strip()] = max(weight, terms.get(term.strip(), 0.0))
    scores: dict[Category, float] = {}
    evidence: dict[Category, list[str]] = {}
    for category, terms in matched.items():
        # A word counts once per category, even when several languages list it or a longer
        # term of the same category also matched it ("licence" inside "licences", "erreur"
        # inside "message d'erreur"), and then with the larger weight ("bill*2" inside
        # "billing").
        kept = [t for t in terms if not any(o != t and _within(t, o) for o in terms)]
        scores[category] = sum(
            max(weight for o, weight in terms.items() if _within(o, t)) for t in kept
        )
        evidence[category] = [t.replace("' ", "'") for t in kept]
    if not scores:
        return Inference(category=None, language=detected)
    (best, top), *rest = sorted(scores.items(), key=lambda item: -item[1])
    runner_up = rest[0][1] if rest else 0.0
    failing = [
        (c, score) for c, score in rest if c in MICROSOFT_TECHNICAL_CATEGORIES and score >= 2
    ]
    if best is Category.HOW_TO and failing and scores.get(C.CONFIGURATION, 0) < failing[0][1]:
        # "How can we get Exchange back? Mail is down": a question about something that fails
        # is that failure, which may be Microsoft's, not a question of use for the helpdesk.
        # One weak word is not a failure ("deleted by error"), and a failure asked for is a
        # setting to ask about ("how can we prevent OneDrive from syncing the desktop").
        (best, top), runner_up = failing[0], top
    return Inference(best, detected, tuple(evidence[best]), round(top / (top + runner_up), 2))


def _within(term: str, other: str) -> bool:
    """Whether ``term`` is found at the start of a word of ``other``; a clause's term (see
    :mod:`services.classifier.clauses`) where its parts are, in order ("nicht … synchronisiert"
    in "nicht mehr synchronisiert")."""
    padded = f" {other}"
    if " … " not in term:
        return padded.find(f" {term}") >= 0
    at = 0
    for part in term.split(" … "):
        at = padded.find(f" {part}", at)
        if at < 0:
            return False
        at += len(part) + 1
    return True


@functools.cache
def _stopped() -> dict[str, tuple[str, ...]]:
    """The languages listing each stop word (see ``STOPWORDS``), so a text's words are looked
    up once, not once per language."""
    stopped: defaultdict[str, list[str]] = defaultdict(list)
    for language, stops in STOPWORDS.items():
        for word in stops:
            stopped[word].append(language)
    return {word: tuple(languages) for word, languages in stopped.items()}


def _language(
    raw: str, words: list[str], lexicon: dict[str, float], hint: str | None
) -> str | None:
    scores: defaultdict[str, float] = defaultdict(float, dict.fromkeys(STOPWORDS, 0.0))
    stopped = _stopped()
    for word in words:
        for language in stopped.get(word, ()):
            scores[language] += 2
    lowered = raw.casefold()
    if not lowered.isascii():  # none of the letters below
        for language, letters in LETTERS.items():
            scores[language] += 3 * sum(lowered.count(ch) for ch in letters)
    for language, weight in lexicon.items():
        # Desks write English product words in every language: they tell English less.
        scores[language] += weight / 2 if language == "en" else weight
    if hint and hint[:2] in STOPWORDS:
        scores[hint[:2]] += 0.5
    best = max(scores, key=lambda language: scores[language], default=None)
    return best if best is not None and scores[best] > 0 else None
