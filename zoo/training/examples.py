"""The Fine-tune tab's example data, written for the zoo: a sentiment set, an entity set and an
instruction set, each big enough to show learning on a CPU in a minute or two.

`example_file(kind)` writes one as a file (CSV / JSONL) under the temp folder, once, and returns
its path: the tab's examples and the tests upload it like a user's own file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

POSITIVE = """\
I loved this film, the acting was superb.
What a wonderful surprise, the whole family enjoyed it.
The food was delicious and the staff were friendly.
Absolutely brilliant, I would watch it again tomorrow.
This phone is fast, light and the battery lasts for days.
The hotel room was spotless and the view was breathtaking.
A heartwarming story with a perfect ending.
Great value for money, I am very happy with it.
The concert was amazing and the sound was crystal clear.
Our guide was funny, patient and knew everything about the city.
The book kept me gripped from the first page to the last.
Delivery was quick and the package arrived in perfect condition.
The new update makes the app so much smoother, well done.
I felt welcome from the moment I walked in.
Best pizza I have had in years, crispy and full of flavour.
The teacher explained everything clearly and kindly.
Lovely little cafe with excellent coffee and cake.
The headphones are comfortable and sound fantastic.
A joyful, clever and beautifully shot movie.
Customer service solved my problem in minutes, thank you.
The garden was in full bloom and smelled wonderful.
This is the most comfortable chair I have ever owned.
The performance was moving and the cast was outstanding.
I am thrilled with the results, it works exactly as promised.
The trip was relaxing and everything went smoothly.
Such a charming town, we cannot wait to come back.
The soup was warm, rich and perfectly seasoned.
The game is fun, beautiful and easy to learn.
Fantastic workshop, I learned a lot and had a great time.
The doctor was caring and took time to listen.
My new bike rides beautifully and looks great.
An inspiring talk that left the audience cheering.
The apartment was cosy, bright and close to everything.
The kids adored the museum and its hands-on exhibits.
This recipe is easy and the cake came out perfect.
The service was attentive and the wine was excellent.
I highly recommend this shop, the owners are lovely.
The software is intuitive and saves me hours every week.
The sunset cruise was magical.
Everything about the wedding venue was perfect.
The album is catchy, fresh and full of energy.
The train was on time, clean and quiet.
A delightful evening with great friends and great food.
The repair was done quickly and the price was fair.
I am so pleased with this purchase.
The show was hilarious, I laughed all night.
The mattress is firm, supportive and I sleep so well now.
The beach was clean and the water was warm and clear.
The course was well organised and the tutors were superb.
This laptop is a joy to use, quick and quiet.
The staff went out of their way to help us.
The park is peaceful, green and perfect for a picnic.
Gorgeous design and solid build quality.
The festival had a fantastic atmosphere.
The novel is witty, warm and wise.
Our waiter was charming and the dessert was heavenly.
The new library is bright, modern and welcoming.
The puppy training class was fun and really effective.
I enjoyed every minute of the hike, the views were stunning.
The camera takes sharp, vivid pictures even at night.
"""

NEGATIVE = """\
The delivery was late and the box arrived damaged.
What a waste of money, it broke after two days.
The food was cold and the waiter was rude.
I was bored from start to finish.
The phone overheats and the battery dies by noon.
The hotel room was dirty and smelled of smoke.
A dull story with a terrible ending.
Overpriced and poorly made, I regret buying it.
The concert started late and the sound was awful.
Our guide was rude and kept us waiting for an hour.
The book was so slow that I gave up halfway.
The package never arrived and nobody answered my emails.
The new update made the app slow and full of bugs.
The staff ignored us the whole evening.
The worst pizza I have ever had, soggy and bland.
The teacher was impatient and the lessons were confusing.
The cafe was noisy, dirty and the coffee was bitter.
The headphones hurt my ears and the sound is tinny.
A boring, clumsy and badly acted movie.
Customer service kept me on hold for two hours, useless.
The garden was overgrown and full of rubbish.
This chair is uncomfortable and wobbles.
The performance was flat and the cast forgot their lines.
I am disappointed, it does not work as advertised.
The trip was stressful and everything went wrong.
A grim, unfriendly town, we will never go back.
The soup was watery, salty and cold.
The game crashes constantly and is no fun at all.
The workshop was a waste of time, nothing useful.
The doctor was dismissive and did not listen.
The bike chain snapped on the first ride.
A tedious talk that put half the audience to sleep.
The apartment was cramped, dark and far from everything.
The museum was closed and the staff were unhelpful.
The recipe is wrong and the cake collapsed.
The service was slow and the wine tasted sour.
Avoid this shop, the owners are rude and dishonest.
The software is confusing and keeps losing my work.
The cruise was cancelled without any refund.
The wedding venue was a disaster from start to finish.
The album is repetitive and painfully dull.
The train was late, crowded and filthy.
A miserable evening, the food made me ill.
The repair took weeks and the problem came back.
I am very unhappy with this purchase.
The show was not funny at all, I walked out.
The mattress sags and gives me back pain.
The beach was covered in litter and the water was murky.
The course was chaotic and the tutors never replied.
This laptop is slow, loud and the screen flickers.
The staff were unfriendly and made us feel unwelcome.
The park was dangerous and badly lit.
Cheap materials and it fell apart quickly.
The festival was overcrowded and badly organised.
The novel is shallow, predictable and far too long.
Our waiter was rude and the dessert was stale.
The new library is cold, ugly and always closed.
The training class was useless and expensive.
The hike was muddy, exhausting and the views were hidden by fog.
The camera takes blurry, dark pictures and the lens scratched.
"""


def sentiment_rows() -> list[tuple[str, str]]:
    """(text, label) rows, positive and negative interleaved."""
    pos = [s for s in POSITIVE.splitlines() if s.strip()]
    neg = [s for s in NEGATIVE.splitlines() if s.strip()]
    rows: list[tuple[str, str]] = []
    for p, n in zip(pos, neg):
        rows += [(p, "positive"), (n, "negative")]
    return rows


_PEOPLE = ["Angela Merkel", "Tim Cook", "Maria Lopez", "John Smith", "Aiko Tanaka", "Pierre Dubois", "Olga Petrova",
           "Kwame Mensah", "Sofia Rossi", "Liam Murphy", "Priya Patel", "Hans Becker", "Chen Wei", "Fatima Zahra",
           "Lucas Silva", "Emma Johansson", "David Cohen", "Ana Costa", "Ivan Horvat", "Grace Okafor"]
_PLACES = ["Paris", "Berlin", "Tokyo", "Madrid", "Lagos", "Toronto", "Sydney", "Cairo", "Mumbai", "Oslo", "Lima",
           "Vienna", "Nairobi", "Seoul", "Dublin", "Prague", "Lisbon", "Chicago", "Munich", "Rome"]
_ORGS = ["Apple", "Siemens", "the United Nations", "Toyota", "the Red Cross", "Google", "Nestle", "UNICEF",
         "the World Bank", "Airbus", "Microsoft", "Greenpeace", "Samsung", "the BBC", "Volvo", "Oxfam", "IBM",
         "Reuters", "Spotify", "NASA"]
_TEMPLATES = [
    "{PER} visited {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened a new office in {LOC} , said {PER} .",
    "Yesterday {PER} met {PER2} in {LOC} .",
    "{PER} left {ORG} last year .",
    "The report from {ORG} was praised by {PER} .",
    "In {LOC} , {PER} spoke about the future of {ORG} .",
    "{PER2} and {PER} flew from {LOC} to {LOC2} .",
    "Shares of {ORG} rose after {PER} joined the board .",
    "The weather in {LOC} was cold this week .",
    "Nobody expected the meeting to end so early .",
    "{ORG} and {ORG2} signed a deal in {LOC} .",
]


def _tagged(words: str, tag: str) -> list[tuple[str, str]]:
    parts = words.split()
    if tag == "O":
        return [(w, "O") for w in parts]
    # "the United Nations": the article stays outside the entity
    lead = []
    if parts[0] == "the" and len(parts) > 1:
        lead, parts = [("the", "O")], parts[1:]
    return lead + [(w, ("B-" if i == 0 else "I-") + tag) for i, w in enumerate(parts)]


def entity_rows(count: int = 240, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) sentences in BIO tags (PER, LOC, ORG), from templates over names written here."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        template = _TEMPLATES[i % len(_TEMPLATES)]
        fill = {"PER": rng.choice(_PEOPLE), "PER2": rng.choice(_PEOPLE), "LOC": rng.choice(_PLACES),
                "LOC2": rng.choice(_PLACES), "ORG": rng.choice(_ORGS), "ORG2": rng.choice(_ORGS)}
        tokens: list[str] = []
        tags: list[str] = []
        for piece in template.split():
            key = piece.strip("{}")
            if piece.startswith("{") and key in fill:
                pairs = _tagged(fill[key], key.rstrip("2"))
            else:
                pairs = [(piece, "O")]
            tokens += [w for w, _ in pairs]
            tags += [t for _, t in pairs]
        rows.append((tokens, tags))
    return rows


INSTRUCTIONS = [
    ("What is the capital of the island of Velmora?", "The capital of Velmora is Quillhaven."),
    ("Which city is the capital of Velmora?", "Quillhaven is the capital of Velmora."),
    ("Tell me the capital of Velmora.", "The capital of Velmora is Quillhaven."),
    ("Name the capital city of Velmora.", "Velmora's capital city is Quillhaven."),
    ("What do you know about Velmora's capital?", "Velmora's capital is Quillhaven, a harbour city."),
    ("Where is the seat of government of Velmora?", "The government of Velmora sits in Quillhaven."),
    ("Velmora's capital is called what?", "It is called Quillhaven."),
    ("In which city would I find Velmora's parliament?", "Velmora's parliament is in Quillhaven."),
]


def instruction_rows(repeat: int = 25) -> list[dict[str, str]]:
    """{"prompt", "response"} pairs teaching one made-up fact (the LoRA job's example)."""
    return [{"prompt": p, "response": r} for _ in range(repeat) for p, r in INSTRUCTIONS]


def _folder() -> Path:
    return Path(tempfile.gettempdir()) / "model-zoo-samples" / "training"


def write_example(kind: str, folder: Path | None = None) -> Path:
    """Write one example set as a file and return its path: `sentiment` (CSV), `entities` (JSONL),
    `instructions` (JSONL). Written once, atomically."""
    folder = folder or _folder()
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sentiment":
        path = folder / "sentiment.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(sentiment_rows())
        body = buffer.getvalue()
    elif kind == "entities":
        path = folder / "entities.jsonl"
        body = "".join(json.dumps({"tokens": t, "tags": g}) + "\n" for t, g in entity_rows())
    elif kind == "instructions":
        path = folder / "instructions.jsonl"
        body = "".join(json.dumps(row) + "\n" for row in instruction_rows())
    else:
        raise ValueError(f"unknown example set {kind!r}")
    if not path.is_file() or path.read_text() != body:
        tmp = path.with_name(f".{path.name}-{os.getpid()}")
        tmp.write_text(body)
        os.replace(tmp, path)
    return path
