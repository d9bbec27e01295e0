"""Failures told by a verb and its negation with other words between them.

The lexicon's terms are adjacent words ("öffnet nicht", "not syncing", "no carga", "ne
s'ouvre"); desks write the negation and the verb apart: "Outlook öffnet bei allen Benutzern
nicht mehr", "users can no longer sign in", "no nos llegan los correos", "n'est plus
accessible pour personne". Here a verb of failure and a negation in one clause (no punctuation
or conjunction between them, a few words apart) is a hit for ``service_unavailable`` (one
German separable verb, "zeigt … falsch an", for ``bug``).

Weights follow the lexicon's: 1, a weak word, where the words could as well tell what is
wanted ("dass Teams nicht startet", "make sure guests cannot sign in"), so a how-to question,
a setting or a bill beside it is not outweighed; 2 where the order itself tells of a failure:
the German main clause, verb first ("startet … nicht"), a German modal of "cannot" ("können …
nicht … anmelden"), a German separable verb apart from its particle ("brechen … ab"), English
"stopped …ing" and French "impossible de …". A clause's term is its key words, joined by "…"
where other words stood between them ("offnet … nicht"), else as written, so that it is the
same word as a lexicon term of adjacent words ("geht nicht") and counts once with it.

A negation that is asked for ("should not be able to send", "soll keine Mails senden können",
"no deben poder enviar", "ne doivent pas pouvoir envoyer") is a ``configuration`` hit of weight
3 (see ``_WISHES``): a setting the partner makes, which outweighs the failure its verb tells of.

Patterns read the accent- and case-folded text (see ``inference.fold``), French elisions apart
("n' arrivent").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.vocabulary import Category

# language, category, term, weight: as the lexicon's terms
ClauseHit = tuple[str, Category, str, float]

_TOKEN = re.compile(r"[a-z0-9'-]+|[.,;:!?()]")


@dataclass(frozen=True)
class _Clause:
    pattern: str
    weight: float
    # Words the text must have, one of each set, for the pattern to be tried at all: most
    # texts have none of a language's verbs or negations, and are not looked at.
    needs: tuple[frozenset[str], ...]
    category: Category = Category.SERVICE_UNAVAILABLE


def _words(spec: str) -> list[str]:
    return spec.split("|")


def _any(words: Iterable[str]) -> str:
    return f"({'|'.join(words)})"


def _negation(words: Iterable[str]) -> str:
    """``_any`` of negations, "n't" standing for every contraction ("doesn't", "won't"; a text
    with one has "n't" among its words in :func:`clause_hits`)."""
    return _any(r"[a-z]+n't" if word == "n't" else word for word in words)


def _gap(most: int, clause_starts: str) -> str:
    """Up to ``most`` words of the same clause: none of ``clause_starts`` among them."""
    return rf"(?: (?!(?:{clause_starts}) )[a-z0-9'-]+){{0,{most}}}"


def _needs(*groups: Iterable[str]) -> tuple[frozenset[str], ...]:
    """One word of each group, the first word of a phrase standing for it."""
    return tuple(frozenset(word.split()[0] for word in group) for group in groups)


def _negated(negations: list[str], most: int, clause_starts: str, verbs: list[str]) -> _Clause:
    """A negation, then up to ``most`` words of its clause, then one of ``verbs``: a weak word,
    as the words could as well say what is wanted."""
    return _Clause(
        rf" {_negation(negations)}{_gap(most, clause_starts)} {_any(verbs)}",
        1.0,
        _needs(negations, verbs),
    )


# German: the negation after the verb in a main clause, before it after a modal or in a
# subordinate clause; separable verbs apart from their particle. The generic verbs are weak in
# any order, as their adjacent terms are, and so is "fällt … aus" (a bill "fällt höher aus").
_DE_STRONG = _words(
    "offnet|offnen|ladt|laden|startet|starten|synchronisiert|synchronisieren|verbindet|"
    "verbinden|reagiert|reagieren|anmelden|einloggen|hochladen|herunterladen|abrufen|"
    "zugreifen|versenden|teilnehmen|beitreten"
)
_DE_WEAK = _words("funktioniert|funktionieren|geht|gehen|lauft|laufen|erreicht|erreichen")
# What a failure leaves undone, after its negation ("werden nicht zugestellt").
_DE_UNDONE = _words(
    "zugestellt|angezeigt|aufrufbar|erreichbar|geladen|geoffnet|gesendet|versendet|verbunden|"
    "erkannt|hochgeladen|heruntergeladen|gespeichert"
)  # and "synchronisiert", a verb of _DE_STRONG
_DE_MODAL = _words("kann|konnen|konnte|konnten")
_DE_NEGATIONS = _words(
    "nicht|nie|niemals|kein|keine|keinen|keinem|keiner|keines|niemand|niemandem|niemanden"
)
# Nobody as the subject, before the verb of a main clause ("Keiner … kann … teilnehmen").
_DE_NOBODY = _words("niemand|keiner")
_DE_INTO = "(an|rein|herein|durch|ins|in(?! frage))"  # not "kommt nicht in Frage"
_DE_STARTS = "und|aber|oder|sondern|denn|dass|weil|wenn|ob|obwohl"


def _de() -> list[_Clause]:
    def gap(most: int) -> str:
        return _gap(most, _DE_STARTS)

    neg = _any(_DE_NEGATIONS)
    every = _DE_STRONG + _DE_WEAK + _DE_UNDONE
    return [
        _Clause(rf" {_any(_DE_STRONG)}{gap(10)} {neg}", 2.0, _needs(_DE_STRONG, _DE_NEGATIONS)),
        _Clause(
            rf" {_any(_DE_MODAL)}{gap(4)} {neg}{gap(6)} {_any(_DE_STRONG)}",
            2.0,
            _needs(_DE_MODAL, _DE_NEGATIONS, _DE_STRONG),
        ),
        _Clause(rf" (bricht|brechen){gap(10)} (ab)", 2.0, _needs(["bricht", "brechen"], ["ab"])),
        _Clause(
            rf" (schlagt|schlagen){gap(10)} (fehl)", 2.0, _needs(["schlagt", "schlagen"], ["fehl"])
        ),
        _Clause(
            rf" (kommt|kommen){gap(10)} {neg}{gap(4)} {_DE_INTO}",
            2.0,
            _needs(["kommt", "kommen"], _DE_NEGATIONS),
        ),
        _Clause(
            rf" {_any(_DE_NOBODY)}{gap(4)} (kommt|kommen){gap(6)} {_DE_INTO}",
            2.0,
            _needs(_DE_NOBODY, ["kommt", "kommen"]),
        ),
        _Clause(
            rf" {_any(_DE_NOBODY)}{gap(6)} {_any(_DE_MODAL)}{gap(6)} {_any(_DE_STRONG)}",
            2.0,
            _needs(_DE_NOBODY, _DE_MODAL, _DE_STRONG),
        ),
        _Clause(rf" (fallt|fallen){gap(10)} (aus)", 1.0, _needs(["fallt", "fallen"], ["aus"])),
        # Shown wrongly: a bug ("zeigt Umlaute seit dem Update falsch an").
        _Clause(
            rf" (zeigt|zeigen){gap(10)} (falsch|doppelt|fehlerhaft) (an)",
            2.0,
            _needs(["zeigt", "zeigen"], ["falsch", "doppelt", "fehlerhaft"]),
            Category.BUG,
        ),
        _Clause(rf" {_any(_DE_WEAK)}{gap(10)} {neg}", 1.0, _needs(_DE_WEAK, _DE_NEGATIONS)),
        _negated(_DE_NEGATIONS, 4, _DE_STARTS, every),
    ]


# English: the negation leads, as in a wish ("make sure guests cannot …"): weak, but for
# "stopped …ing".
_EN_VERBS = _words(
    "open|opening|load|loading|start|starting|sync|syncing|synchronize|synchronizing|connect|"
    "connecting|send|sending|receive|receiving|arrive|arriving|reach|reachable|accessible|"
    "respond|responding|deliver|delivered|delivering|join|joining|launch|launching|work|"
    "working|download|downloading|upload|uploading|save|saving|opens|loads|starts|syncs|"
    "connects|sends|receives|arrives|responds|works|launches|sign in|signing in|log in|"
    "logging in|get into|get in|recognised|recognized|detected|showing|show up|showing up|"
    "displayed|displaying|sent|received"
)
_EN_STOPPED = _words(
    "syncing|loading|sending|receiving|responding|opening|connecting|launching|starting|"
    "delivering|arriving"
)
# "n't" stands for every contraction ("doesn't", "won't"): see _negation.
_EN_NEGATIONS = _words("not|n't|cannot|no longer|unable to|nobody|no one|none of|never")
_EN_STARTS = "and|but|or|because|while|although|so"


def _en() -> list[_Clause]:
    return [
        _negated(_EN_NEGATIONS, 5, _EN_STARTS, _EN_VERBS),
        _Clause(
            rf" (stopped){_gap(1, _EN_STARTS)} {_any(_EN_STOPPED)}",
            2.0,
            _needs(["stopped"], _EN_STOPPED),
        ),
    ]


# Spanish: "no", "nadie", "ningún" before the verb, pronouns or a modal between.
_ES_VERBS = _words(
    "abre|abren|abrir|carga|cargan|cargar|conecta|conectan|conectar|sincroniza|sincronizan|"
    "sincronizar|sincronizando|funciona|funcionan|funcionar|envia|envian|enviar|recibe|"
    "reciben|recibir|llega|llegan|llegar|accede|acceden|acceder|accesible|entra|entran|entrar|"
    "responde|responden|responder|arranca|arrancan|arrancar|consigue|consiguen|iniciar|"
    "descargar|subir|sube|suben|guardar|reconoce|reconocen|detecta|detectan|aparece|aparecen|"
    "muestra|muestran"
)
_ES_NEGATIONS = _words("no|nunca|jamas|nadie|ningun|ninguna|ninguno")
_ES_STARTS = "y|e|pero|o|porque|cuando|aunque|si|que"


def _es() -> list[_Clause]:
    return [_negated(_ES_NEGATIONS, 4, _ES_STARTS, _ES_VERBS)]


# French: "ne"/"n'" before the verb, a pronoun or a modal between ("ne nous permet plus",
# "ne peut rejoindre"); "impossible de" with the verb it cannot do.
_FR_VERBS = _words(
    "ouvre|ouvrent|ouvrir|charge|chargent|charger|connecte|connectent|connecter|synchronise|"
    "synchronisent|synchroniser|fonctionne|fonctionnent|marche|marchent|envoie|envoient|"
    "envoyer|recoit|recoivent|recevoir|arrive|arrivent|acceder|accede|accedent|accessible|"
    "demarre|demarrent|demarrer|lance|lancent|lancer|repond|repondent|repondre|affiche|"
    "affichent|afficher|rejoindre|permet|telecharger|enregistrer|reconnu|reconnue|reconnus|"
    "reconnues|detecte|detectee|detectes|partent|partir|envoye|envoyes|envoyee|envoyees|recu|"
    "recus|recue|recues"
)
_FR_IMPOSSIBLE = _words(
    "ouvrir|charger|connecter|synchroniser|envoyer|recevoir|acceder|demarrer|lancer|"
    "rejoindre|afficher|telecharger|enregistrer"
)
_FR_STARTS = "et|mais|ou|car|quand|lorsque|si|que|qu'|parce"


def _fr() -> list[_Clause]:
    return [
        _negated(["ne", "n'"], 3, _FR_STARTS, _FR_VERBS),
        _Clause(
            rf" (impossible (?:de|d')(?: se| s')?) {_any(_FR_IMPOSSIBLE)}",
            2.0,
            _needs(["impossible"], _FR_IMPOSSIBLE),
        ),
    ]


# A wish, not a failure: a negation beside a word that asks for it ("interns should not be
# able to send", "der Praktikant soll keine Mails senden können", "los becarios no deben
# poder enviar", "les invités ne doivent pas pouvoir télécharger") is a setting the partner
# makes, weight 3, so the failure its verb would tell of (1, or a lexicon term's 2) does not
# send it to Microsoft. The two may stand a few words apart, in either order, within one
# clause; "that", "dass", "que" do not end it here, a wish runs across them.
# Per language: the words that ask, the negations, and the words that begin another clause.
_WISHES = {
    "en": (
        _words("should|shouldn't|must|mustn't|shall|ensure|sure|allowed"),
        _words("not|n't|never|nobody|no one|cannot"),
        _EN_STARTS,
    ),
    "de": (
        _words("soll|sollen|sollte|sollten|darf|durfen|sicherstellen|sorgen|verhindern"),
        _DE_NEGATIONS,
        "und|aber|oder|sondern|denn|weil|obwohl",
    ),
    "es": (
        _words(
            "debe|deben|deberia|deberian|queremos|quiero|quieren|evitar|impedir|asegurar|asegurarse"
        ),
        _ES_NEGATIONS,
        "y|e|pero|o|porque|aunque",
    ),
    "fr": (
        _words(
            "doit|doivent|devrait|devraient|voulons|veut|voudrions|souhaitons|souhaite|"
            "empecher|eviter|assurer|pour que"
        ),
        _words("ne|n'|personne|aucun|aucune"),
        "et|mais|ou|car|parce",
    ),
}


def _wishes(language: str) -> list[_Clause]:
    markers, negations, starts = _WISHES[language]
    # Nor does a comma before "dass", "que" or "that": German writes one before every "dass".
    word = rf"(?:, (?:dass|que|qu'|that)|(?!(?:{starts}) )[a-z0-9'-]+)"
    gap = rf"(?: {word}){{0,8}}"
    needs = _needs(markers, negations)
    ask, negation = _any(markers), _negation(negations)
    return [
        _Clause(rf" {ask}{gap} {negation}", 3.0, needs, Category.CONFIGURATION),
        _Clause(rf" {negation}{gap} {ask}", 3.0, needs, Category.CONFIGURATION),
    ]


@dataclass(frozen=True)
class _Grammar:
    """Every language's clauses compiled, each ending at a word's end, and the distinct word
    groups they need (a clause names its groups by position)."""

    groups: tuple[frozenset[str], ...]
    clauses: tuple[tuple[str, Category, re.Pattern[str], float, tuple[int, ...]], ...]
    # Every group's words: a text with none of them has no clause to look for.
    words: frozenset[str]


@functools.cache
def _grammar() -> _Grammar:
    grammars = {"de": _de, "en": _en, "es": _es, "fr": _fr}
    groups: dict[frozenset[str], int] = {}
    clauses = []
    for language, grammar in grammars.items():
        for clause in grammar() + _wishes(language):
            needs = tuple(groups.setdefault(group, len(groups)) for group in clause.needs)
            pattern = re.compile(f"{clause.pattern}(?= )")
            clauses.append((language, clause.category, pattern, clause.weight, needs))
    return _Grammar(tuple(groups), tuple(clauses), frozenset().union(*groups))


def clause_hits(folded: str, words: list[str]) -> list[ClauseHit]:
    """A hit for each clause of ``folded`` (its words ``words``) that tells of a failure with
    its negation (or particle) apart from its verb."""
    grammar = _grammar()
    present = set(grammar.words.intersection(words))
    if "n't" in folded:
        present.add("n't")
    if not present:
        return []
    met = [not present.isdisjoint(group) for group in grammar.groups]
    found: list[ClauseHit] = []
    tokens = ""
    for language, category, pattern, weight, needs in grammar.clauses:
        for group in needs:
            if not met[group]:
                break
        else:
            tokens = tokens or f" {' '.join(_TOKEN.findall(folded))} "
            found.extend(
                (language, category, _term(match), weight) for match in pattern.finditer(tokens)
            )
    return found


def _term(match: re.Match[str]) -> str:
    keys = match.groups()
    adjacent = len(match[0].split()) == sum(len(key.split()) for key in keys)
    return " ".join(keys) if adjacent else " … ".join(keys)
