"""The fine-tuning data sets (written for the zoo; the tab's examples are the same ones, from
zoo/training/examples.py) and held-out sentences that no training file contains."""

from __future__ import annotations

from zoo.training.examples import entity_rows, instruction_rows, sentiment_rows, write_example

__all__ = ["HELD_OUT_SENTIMENT", "NEWCOMER_SENTENCES", "entity_rows", "instruction_rows", "sentiment_rows",
           "write_example"]

#: Reviews in none of the training rows, for accuracy before and after tuning.
HELD_OUT_SENTIMENT: list[tuple[str, str]] = [
    ("The staff were lovely and our room was perfect.", "positive"),
    ("Terrible service, I want my money back.", "negative"),
    ("A superb meal, every dish was a delight.", "positive"),
    ("The screen cracked the first time I dropped it.", "negative"),
    ("I had a fantastic time and made new friends.", "positive"),
    ("The instructions were useless and the parts did not fit.", "negative"),
    ("Brilliant acting and a gripping plot.", "positive"),
    ("The flight was delayed for six hours and nobody told us why.", "negative"),
    ("Our host was warm, generous and full of good advice.", "positive"),
    ("The coffee machine leaks and makes a horrible noise.", "negative"),
    ("This is the best purchase I have made all year.", "positive"),
    ("The tour was rushed, crowded and overpriced.", "negative"),
    ("What a beautiful, peaceful place to spend a weekend.", "positive"),
    ("The manager shouted at us and refused to help.", "negative"),
    ("The lessons are clear, fun and well paced.", "positive"),
    ("My order was wrong twice and the fries were cold.", "negative"),
    ("A clever, funny film that the whole family will love.", "positive"),
    ("The room was freezing and the heating never worked.", "negative"),
    ("The nurses were kind and made me feel safe.", "positive"),
    ("The app keeps crashing and support never answers.", "negative"),
    ("Gorgeous scenery and perfect weather all week.", "positive"),
    ("The shoes fell apart after a month.", "negative"),
    ("Everything arrived early and works perfectly.", "positive"),
    ("A long, dreary lecture with nothing new in it.", "negative"),
    ("The band was tight and the crowd loved every song.", "positive"),
    ("The car broke down on the motorway within a week.", "negative"),
    ("Such a friendly neighbourhood with great little shops.", "positive"),
    ("The paint peeled off and the colour was nothing like the photo.", "negative"),
    ("I am delighted with the quality and the price.", "positive"),
    ("The bathroom was filthy and the towels smelled.", "negative"),
]

#: What the newcomer types in the Text classification tab after tuning.
NEWCOMER_SENTENCES: list[tuple[str, str]] = [
    ("The staff were lovely and our room was perfect.", "positive"),
    ("Terrible service, I want my money back.", "negative"),
    ("A superb meal, every dish was a delight.", "positive"),
    ("The app keeps crashing and support never answers.", "negative"),
]


def _sentence(*pieces: tuple[str, str]) -> tuple[list[str], list[str]]:
    """Tokens and BIO tags from (words, type) pieces; type "O" for plain words."""
    tokens, tags = [], []
    for words, kind in pieces:
        for i, word in enumerate(words.split()):
            tokens.append(word)
            tags.append("O" if kind == "O" else ("B-" if i == 0 else "I-") + kind)
    return tokens, tags


#: Sentences with names, places and organisations that no training sentence has, some in new wordings.
HELD_OUT_ENTITIES: list[tuple[list[str], list[str]]] = [
    _sentence(("Yuki Sato", "PER"), ("visited", "O"), ("Helsinki", "LOC"), ("on Monday .", "O")),
    _sentence(("Omar Haddad", "PER"), ("works for", "O"), ("Philips", "ORG"), ("in", "O"), ("Amsterdam", "LOC"),
              (".", "O")),
    _sentence(("Yesterday", "O"), ("Nadia Rahman", "PER"), ("met", "O"), ("Tom Walker", "PER"), ("in", "O"),
              ("Warsaw", "LOC"), (".", "O")),
    _sentence(("Shares of", "O"), ("Nokia", "ORG"), ("rose after", "O"), ("Elena Popescu", "PER"),
              ("joined the board .", "O")),
    _sentence(("In", "O"), ("Athens", "LOC"), (",", "O"), ("Marco Bianchi", "PER"), ("spoke about the future of", "O"),
              ("Ferrari", "ORG"), (".", "O")),
    _sentence(("Heineken", "ORG"), ("opened a new office in", "O"), ("Budapest", "LOC"), (", said", "O"),
              ("Sara Lindqvist", "PER"), (".", "O")),
    _sentence(("Kenji Watanabe", "PER"), ("left", "O"), ("Sony", "ORG"), ("last year .", "O")),
    _sentence(("The weather in", "O"), ("Montreal", "LOC"), ("was cold this week .", "O")),
]
