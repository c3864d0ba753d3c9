"""The built-in university-helpdesk example: a long system prompt with checkable rules, and
seeded synthetic feedback logs in English and Russian.

Each log row is what a team would export from production: the question, the user's tags (role,
campus, education level), the retrieved contexts, the model's answer, a good/bad label and, for
bad answers, a comment saying why. Questions come in three kinds: answerable from the contexts,
unanswerable (retrieval returned passages about other things), and off-topic. Good answers follow
every rule of `PROMPT_YAML`; each bad answer breaks one rule, named by its comment.

Questions are compositional: a campus service (library, sports hall, dental office... 45 of them)
times an attribute (opening hours, room, contact person, fee, how to sign up), three wordings of
each per language. The facts inside a passage (times, rooms, buildings, names, fees, dates) are
drawn at random for every row, and a good answer copies them from its passage, so nothing about
a service can be memorised: the only way to answer right is to read the passages. Whether a
passage answers the question is decided with the rule checker's own word-overlap test
(`prompts.is_answerable`), so the labels and the grading always agree.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tunelab.prompts.rules import CheckItem, is_answerable

# service key -> (English name, Russian nominative, Russian genitive)
SERVICES: dict[str, tuple[str, str, str]] = {
    "library": ("library", "библиотека", "библиотеки"),
    "sports_hall": ("sports hall", "спортзал", "спортзала"),
    "canteen": ("canteen", "столовая", "столовой"),
    "medical": ("medical centre", "медпункт", "медпункта"),
    "it_desk": ("IT service desk", "IT-служба", "IT-службы"),
    "dean": ("dean's office", "деканат", "деканата"),
    "admissions": ("admissions office", "приёмная комиссия", "приёмной комиссии"),
    "accounting": ("accounting office", "бухгалтерия", "бухгалтерии"),
    "housing": ("housing office", "жилищный отдел", "жилищного отдела"),
    "career": ("career centre", "центр карьеры", "центра карьеры"),
    "language": ("language centre", "языковой центр", "языкового центра"),
    "chem_lab": ("chemistry laboratory", "химическая лаборатория", "химической лаборатории"),
    "computer_class": ("computer classroom", "компьютерный класс", "компьютерного класса"),
    "pool": ("swimming pool", "бассейн", "бассейна"),
    "copy": ("copy centre", "копицентр", "копицентра"),
    "council": ("student council", "студенческий совет", "студенческого совета"),
    "international": ("international office", "международный отдел", "международного отдела"),
    "personnel": ("personnel department", "отдел кадров", "отдела кадров"),
    "psychology": ("psychological service", "психологическая служба", "психологической службы"),
    "museum": ("art museum", "художественный музей", "художественного музея"),
    "bookshop": ("bookshop", "книжный магазин", "книжного магазина"),
    "mail": ("mail room", "почтовое отделение", "почтового отделения"),
    "lost_found": ("lost property office", "бюро находок", "бюро находок"),
    "doctoral": ("doctoral school", "аспирантура", "аспирантуры"),
    "scholarship": ("scholarship office", "стипендиальный отдел", "стипендиального отдела"),
    "exams": ("examination office", "экзаменационный отдел", "экзаменационного отдела"),
    "stadium": ("stadium", "стадион", "стадиона"),
    "reading_room": ("reading room", "читальный зал", "читального зала"),
    "archive": ("archive", "архив", "архива"),
    "printing": ("printing house", "типография", "типографии"),
    "security": ("security service", "служба охраны", "службы охраны"),
    "theatre": ("theatre studio", "театральная студия", "театральной студии"),
    "chess": ("chess club", "шахматный клуб", "шахматного клуба"),
    "dental": ("dental office", "стоматологический кабинет", "стоматологического кабинета"),
    "physics_lab": ("physics laboratory", "физическая лаборатория", "физической лаборатории"),
    "robotics_lab": ("robotics laboratory", "лаборатория робототехники", "лаборатории робототехники"),
    "garden": ("botanical garden", "ботанический сад", "ботанического сада"),
    "observatory": ("observatory", "обсерватория", "обсерватории"),
    "coworking": ("coworking space", "коворкинг", "коворкинга"),
    "music": ("music studio", "музыкальная студия", "музыкальной студии"),
    "cafe": ("student cafe", "студенческое кафе", "студенческого кафе"),
    "bicycles": ("bicycle parking", "велопарковка", "велопарковки"),
    "laundry": ("laundry", "прачечная", "прачечной"),
    "legal": ("legal clinic", "юридическая клиника", "юридической клиники"),
    "writing": ("writing centre", "центр академического письма", "центра академического письма"),
}
# attribute -> {lang: (passage, three question wordings)}. In passages {s}/{n}/{g} are the service
# (English / Russian nominative / genitive) and the other fields are the row's random facts.
ATTRIBUTES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "hours": {
        "en": (
            "The {s} on the {c} campus is open on weekdays from {t1} to {t2}.",
            (
                "When is the {s} open?",
                "What are the hours when the {s} is open?",
                "Until what time is the {s} open on weekdays?",
            ),
        ),
        "ru": (
            "{N} работает по будням с {t1} до {t2}.",
            ("Когда работает {n}?", "Какие часы работы у {g}?", "До скольки работает {n} по будням?"),
        ),
    },
    "room": {
        "en": (
            "The {s} is in room {room} of building {b} on the {c} campus.",
            ("Where is the {s}?", "In which room is the {s}?", "Which building is the {s} in?"),
        ),
        "ru": (
            "{N} находится в аудитории {room}, корпус {b}.",
            ("Где находится {n}?", "В какой аудитории находится {n}?", "В каком корпусе находится {n}?"),
        ),
    },
    "contact": {
        "en": (
            "The contact person in charge of the {s} is {name}, extension {ext}.",
            (
                "Who is the contact person at the {s}?",
                "Whom should I contact at the {s}?",
                "Who is in charge of the {s}?",
            ),
        ),
        "ru": (
            "За работу {g} отвечает {name}, номер {ext}.",
            ("Кто отвечает за работу {g}?", "Кто отвечает за вопросы {g}?", "С кем связаться по работе {g}?"),
        ),
    },
    "fee": {
        "en": (
            "Using the {s} costs {fee} roubles per semester, paid in the student portal.",
            (
                "How much does the {s} charge per semester?",
                "What is the fee for the {s}?",
                "How much do I pay to use the {s}?",
            ),
        ),
        "ru": (
            "Услуги {g} стоят {fee} рублей за семестр.",
            ("Сколько стоят услуги {g}?", "Какая оплата за услуги {g}?", "Нужно ли платить за услуги {g}?"),
        ),
    },
    "signup": {
        "en": (
            "To sign up for the {s}, apply in the student portal before the deadline of {date}.",
            (
                "How do I sign up for the {s}?",
                "What is the deadline to register for the {s}?",
                "Where do I apply to use the {s}?",
            ),
        ),
        "ru": (
            "Запись на услуги {g} через портал до {date}.",
            (
                "Как записаться на услуги {g}?",
                "До какого числа подаётся заявка на услуги {g}?",
                "Где подать заявку на услуги {g}?",
            ),
        ),
    },
}
NAMES = {
    "en": (
        "Anna Berg",
        "Maria Lopez",
        "Peter Novak",
        "Laura Kim",
        "David Stone",
        "Elena Ross",
        "Tom Walker",
        "Nina Hart",
        "Oscar Lind",
        "Julia Grant",
    ),
    "ru": (
        "Анна Петрова",
        "Мария Соколова",
        "Ольга Смирнова",
        "Игорь Волков",
        "Дмитрий Орлов",
        "Елена Козлова",
        "Павел Морозов",
        "Наталья Белова",
        "Сергей Лебедев",
        "Ирина Зайцева",
    ),
}
MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "ru": (
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ),
}
BUILDINGS = {"en": "ABCDEF", "ru": "АБВГДЕ"}
# Twenty-four per language, a translation pair sharing one wording group.
OFF_TOPIC = {
    "en": (
        "Can you write me a poem about the sea?",
        "What is the best pizza place in town?",
        "Who will win the football match tonight?",
        "Tell me a joke about cats.",
        "How do I fix the engine of my car?",
        "Give me a recipe for pancakes.",
        "What should I cook for dinner tonight?",
        "Recommend a good movie for the weekend.",
        "What is the weather like in Paris?",
        "Write a short story about a dragon.",
        "How do I lose weight quickly?",
        "Which stocks should I buy this year?",
        "How do I grow tomatoes on a balcony?",
        "Translate a love letter for my girlfriend.",
        "What is the capital of Australia?",
        "Which smartphone should I buy?",
        "How do I train my puppy to sit?",
        "Tell me about the history of the Roman Empire.",
        "Where can I buy cheap plane tickets to Rome?",
        "What horoscope sign fits me best?",
        "Compose a birthday song for my mother.",
        "How do I bake sourdough bread?",
        "Which video game is the most fun?",
        "How do I knit a warm scarf?",
    ),
    "ru": (
        "Напиши мне стихотворение о море.",
        "Где лучшая пицца в городе?",
        "Кто выиграет футбольный матч сегодня?",
        "Расскажи анекдот про котов.",
        "Как починить двигатель машины?",
        "Дай рецепт блинов.",
        "Что приготовить на ужин сегодня?",
        "Посоветуй хороший фильм на выходные.",
        "Какая погода в Париже?",
        "Напиши рассказ про дракона.",
        "Как быстро похудеть?",
        "Какие акции купить в этом году?",
        "Как вырастить помидоры на балконе?",
        "Переведи любовную записку для моей девушки.",
        "Какая столица Австралии?",
        "Какой смартфон купить?",
        "Как научить щенка сидеть?",
        "Расскажи историю Римской империи.",
        "Где купить дешёвые билеты на самолёт в Рим?",
        "Какой знак гороскопа мне подходит?",
        "Сочини песню на день рождения мамы.",
        "Как испечь хлеб на закваске?",
        "Какая видеоигра самая интересная?",
        "Как связать тёплый шарф?",
    ),
}

# Off-topic requests are also compositional, so that declining can generalise to requests never
# seen: a kind of request times a subject (8 x 20 per language, a translation pair sharing one
# wording group), beside the fixed ones above. Russian subjects are in the accusative ("про ...").
OFF_TOPIC_REQUESTS = {
    "en": (
        "Write me a poem about {x}.",
        "Tell me a joke about {x}.",
        "Write a short story about {x}.",
        "Compose a song about {x}.",
        "Give me some fun facts about {x}.",
        "What is your honest opinion about {x}?",
        "Recommend a good film about {x}.",
        "Draw me a funny picture of {x}.",
    ),
    "ru": (
        "Напиши мне стихотворение про {x}.",
        "Расскажи анекдот про {x}.",
        "Напиши короткий рассказ про {x}.",
        "Сочини песню про {x}.",
        "Расскажи интересные факты про {x}.",
        "Что ты честно думаешь про {x}?",
        "Посоветуй хороший фильм про {x}.",
        "Нарисуй смешную картинку про {x}.",
    ),
}
OFF_TOPIC_SUBJECTS = (
    ("the sea", "море"),
    ("cats", "котов"),
    ("dragons", "драконов"),
    ("football", "футбол"),
    ("pizza", "пиццу"),
    ("the weather", "погоду"),
    ("old cars", "старые машины"),
    ("the stock market", "биржу"),
    ("tomatoes", "помидоры"),
    ("pirates", "пиратов"),
    ("video games", "видеоигры"),
    ("dogs", "собак"),
    ("the moon", "луну"),
    ("winter", "зиму"),
    ("coffee", "кофе"),
    ("rainbows", "радугу"),
    ("trains", "поезда"),
    ("mountains", "горы"),
    ("dinosaurs", "динозавров"),
    ("pancakes", "блины"),
)


# Fixed requests that are (near) rewordings of a composed one share its wording group, so the
# demo's split never holds out one of them while training on the other.
FIXED_AS_COMPOSED = {0: (0, 0), 3: (1, 1), 9: (2, 2)}  # poem about the sea, joke about cats, story about a dragon


def off_topic_request(request: int, subject: int, lang: str) -> str:
    return OFF_TOPIC_REQUESTS[lang][request].format(x=OFF_TOPIC_SUBJECTS[subject][0 if lang == "en" else 1])


def _topic_keywords() -> list[str]:
    """Words that make a question on-topic for the checker: the service names, both languages."""
    words = {
        w.lower()
        for en, nom, gen in SERVICES.values()
        for w in re.findall(r"[^\W\d_]+", f"{en} {nom} {gen}")
        if len(w) >= 4
    }
    return sorted(words)


PROMPT_YAML = """\
name: university-helpdesk
prompt: |
  You are the helpdesk assistant of Northfield University. You answer questions from students,
  applicants and university staff, who reach you through the university portal. Each message
  gives you the user's tags (their role, campus and education level), the passages that the
  search system retrieved for the question, and the question itself.

  How to answer:
  - Always be polite and calm, even when the user is not.
  - Start every reply with the form of address for the user's role: "Dear student," for
    students, "Dear applicant," for applicants and "Dear colleague," for staff. In Russian use
    "Уважаемый студент," "Уважаемый абитуриент," and "Уважаемый коллега,".
  - Answer only from the retrieved passages. Do not add facts, dates, prices, rooms or names
    that the passages do not contain, and do not rely on what you think you know about
    universities in general.
  - When the passages do not contain the answer, say "I don't know" (in Russian "Я не знаю")
    and suggest contacting the helpdesk office; never guess.
  - Only help with questions about the university: studies, admission, exams, fees, housing,
    the library, IT accounts, campus services (offices, laboratories, sports, canteens, clinics,
    clubs) and work at the university. Politely decline anything else (poems, jokes, sports
    results, cooking, personal advice) by saying "I can only help with university questions"
    (in Russian "Я могу помочь только с вопросами об университете").
  - Reply in the language of the question: English questions in English, Russian in Russian.
  - Keep it short: at most three sentences, no bullet points or numbered lists, no headings.
  - Never describe yourself as an AI or a language model.
  - End every reply with a short question offering further help.
rules:
  - kind: language
    description: reply in the language of the question
  - kind: max_sentences
    n: 3
  - id: no_list
    kind: format
    format: no_list
  - kind: ends_with_question
  - id: not_an_ai
    kind: must_not_contain
    phrase: "as an AI"
  - kind: role_address
    tag: role
    forms:
      student: ["Dear student", "Уважаемый студент"]
      applicant: ["Dear applicant", "Уважаемый абитуриент"]
      staff: ["Dear colleague", "Уважаемый коллега"]
  - kind: grounded
    dont_know: ["I don't know", "не знаю"]
    ignore: ["Dear student", "Dear applicant", "Dear colleague", "Уважаемый студент", "Уважаемый абитуриент", "Уважаемый коллега"]
    min_overlap: 0.6
  - kind: declines_off_topic
    topic_keywords: [library, tuition, dormitory, exam, retake, card, admission, application, applicants, documents,
      deadline, leave, password, account, scholarship, thesis, semester, campus, university, student,
      dean, course, lecture, библиотека, оплата, обучение, общежитие, экзамен, пересдача, студенческий,
      документы, приём, поступление, заявление, отпуск, пароль, стипендия, диплом, семестр, кампус,
      университет, студент, деканат, зачисление, диссертацию, защиты, выпускную,
      KEYWORDS]
    decline_phrases: ["I can only help with university questions", "только с вопросами об университете"]
""".replace("KEYWORDS", ", ".join(_topic_keywords()))

ROLES = ("student", "applicant", "staff")
CAMPUSES = {"north": ("North", "Северного"), "south": ("South", "Южного")}
LEVELS = ("bachelor", "master", "phd")
GREETING = {
    "en": {"student": "Dear student", "applicant": "Dear applicant", "staff": "Dear colleague"},
    "ru": {"student": "Уважаемый студент", "applicant": "Уважаемый абитуриент", "staff": "Уважаемый коллега"},
}
CLOSING = {
    "en": ("Can I help you with anything else?", "Is there anything else I can help with?"),
    "ru": ("Чем ещё помочь?", "Есть ещё вопросы?"),  # short: Russian costs 3-4 times the tokens
}
DONT_KNOW = {
    "en": "I don't know, the documents I have do not cover this, so please contact the helpdesk office.",
    "ru": "Я не знаю, в документах этого нет, обратитесь в офис поддержки.",
}
DECLINE = {
    "en": "I can only help with university questions.",
    "ru": "Я могу помочь только с вопросами об университете.",
}
# The answerable kind is the largest share, as in production, so that a question about a service
# the model has never seen is answered from its passage rather than refused; the two hard kinds
# are far above their production share. Measured on the demo (README): 60/20/20 left every
# held-out unanswerable question answered from a wrong passage; 50/30/20 passed 72-92% of held-out
# questions on all rules over eight runs of 160-240 steps and 88-100% over six seeds at the demo's 320;
# a third each tipped the model into declining answerable ones.
KIND_WEIGHTS = {"answerable": 0.5, "unanswerable": 0.3, "off_topic": 0.2}
PII = {
    "en": " My email is {n}.petrov@example.com and my phone is +7 912 345-67-{d}.",
    "ru": " Моя почта {n}.ivanova@mail.ru, телефон +7 912 345-67-{d}.",
}
FILLER = {
    "en": "Our university is one of the oldest in the region. It has many faculties. Students enjoy studying here.",
    "ru": "Наш университет один из старейших в регионе. В нём много факультетов. Студентам здесь нравится учиться.",
}
HALLUCINATION = {
    "en": "this is handled by Professor Smith in room 999, it is free and takes one day.",
    "ru": "этим занимается профессор Смирнов в кабинете 999, это бесплатно и занимает один день.",
}
COMMENTS = {
    "no_greeting": ("does not address the user by role", "нет обращения к пользователю"),
    "wrong_form": ("wrong form of address for the role", "неверное обращение для роли"),
    "too_long": ("too long, more than three sentences", "слишком длинно, больше трёх предложений"),
    "list": ("uses a bullet list", "использует список"),
    "no_question": ("does not end with a question", "не заканчивается вопросом"),
    "wrong_language": ("answered in the wrong language", "ответ на другом языке"),
    "hallucination": ("made up information not in the context", "выдуманная информация, которой нет в контексте"),
    "ai_self": ("calls itself an AI", "называет себя ИИ"),
    "off_topic_answered": ("answered an off-topic request", "ответил на вопрос не по теме"),
    "guessed": ("guessed instead of saying it does not know", "угадывает вместо того чтобы сказать что не знает"),
}


def lower_first(text: str) -> str:
    """The sentence as it goes on after "Dear student,": first letter lower-cased, unless the first
    word is an acronym ("IT-служба")."""
    return text if text[1:2].isupper() else text[0].lower() + text[1:]


def random_facts(rng: random.Random, lang: str, campus: str) -> dict[str, str]:
    """One draw of every fact a passage may hold, in the language's own spelling."""
    start, end = rng.randint(14, 21) * 30, rng.randint(32, 44) * 30  # 7:00-10:30 and 16:00-22:00, on the half hour
    day, month = rng.randint(1, 28), rng.choice(MONTHS[lang])
    return {
        "c": CAMPUSES[campus][0 if lang == "en" else 1],
        "t1": f"{start // 60}:{start % 60:02d}",
        "t2": f"{end // 60}:{end % 60:02d}",
        "room": str(rng.randint(101, 599)),
        "b": rng.choice(BUILDINGS[lang]),
        "name": rng.choice(NAMES[lang]),
        "ext": str(rng.randint(2000, 7999)),
        "fee": str(rng.randint(4, 60) * 50),
        "date": f"{month} {day}" if lang == "en" else f"{day} {month}",
    }


def _fill(template: str, service: str, lang: str, facts: dict[str, str]) -> str:
    en, nom, gen = SERVICES[service]
    return template.format(s=en, n=nom, N=nom[0].upper() + nom[1:], g=gen, **facts)


def passage(service: str, attribute: str, lang: str, facts: dict[str, str]) -> str:
    return _fill(ATTRIBUTES[attribute][lang][0], service, lang, facts)


def question_text(service: str, attribute: str, lang: str, wording: int) -> str:
    return _fill(ATTRIBUTES[attribute][lang][1][wording], service, lang, {})


def _distractors(
    rng: random.Random, question: str, lang: str, campus: str, avoid: tuple[str, str] | None, k: int
) -> list[str]:
    """k passages about other (service, attribute) pairs that the checker agrees do not answer `question`."""
    found: list[str] = []
    while len(found) < k:
        pair = (rng.choice(list(SERVICES)), rng.choice(list(ATTRIBUTES)))
        text = passage(*pair, lang, random_facts(rng, lang, campus))
        if pair != avoid and not is_answerable(CheckItem(question, contexts=(text,)), 0.5):
            found.append(text)
    return found


def sample_question(rng: random.Random, lang: str, kind_weights: dict[str, float] = KIND_WEIGHTS) -> dict[str, Any]:
    """One question with its tags, contexts, kind (answerable/unanswerable/off_topic), its wording
    group (rewordings and translations of one question share it) and the answer body."""
    role, campus, level = rng.choice(ROLES), rng.choice(list(CAMPUSES)), rng.choice(LEVELS)
    kind = rng.choices(list(kind_weights), weights=list(kind_weights.values()))[0]
    if kind == "off_topic":
        if rng.random() < 0.3:  # one of the fixed requests
            i = rng.randrange(len(OFF_TOPIC[lang]))
            question, group = (
                OFF_TOPIC[lang][i],
                "off_topic/{}/{}".format(*FIXED_AS_COMPOSED[i]) if i in FIXED_AS_COMPOSED else f"off_topic/{i}",
            )
        else:
            request, subject = rng.randrange(len(OFF_TOPIC_REQUESTS[lang])), rng.randrange(len(OFF_TOPIC_SUBJECTS))
            question, group = off_topic_request(request, subject, lang), f"off_topic/{request}/{subject}"
        topic, body = "", ""
        contexts = _distractors(rng, question, lang, campus, None, 2)
    else:
        service, attribute = rng.choice(list(SERVICES)), rng.choice(list(ATTRIBUTES))
        question, group, topic = (
            question_text(service, attribute, lang, rng.randrange(3)),
            f"{service}/{attribute}",
            f"{service}/{attribute}",
        )
        gold = passage(service, attribute, lang, random_facts(rng, lang, campus))
        contexts = _distractors(rng, question, lang, campus, (service, attribute), 1 if kind == "answerable" else 2)
        if kind == "answerable":
            contexts.insert(rng.randrange(2), gold)
        body = lower_first(gold)
    if rng.random() < 0.05:
        question += PII[lang].format(n=rng.choice(["ivan", "olga", "petr"]), d=rng.randint(10, 99))
    return {
        "question": question,
        "role": role,
        "campus": campus,
        "level": level,
        "contexts": contexts,
        "kind": kind,
        "topic": topic,
        "group": group,
        "lang": lang,
        "body": body,
    }


def good_answer(kind: str, lang: str, role: str, body: str, rng: random.Random) -> str:
    core = {"answerable": body, "unanswerable": DONT_KNOW[lang], "off_topic": DECLINE[lang]}[kind]
    if lang == "ru":  # after "Уважаемый студент," the sentence goes on in lower case
        core = lower_first(core)
    return f"{GREETING[lang][role]}, {core} {rng.choice(CLOSING[lang])}"


def bad_answer(kind: str, lang: str, role: str, body: str, rng: random.Random) -> tuple[str, str]:
    """A reply that breaks one rule, and the grader's comment (in the question's language)."""
    greet, close = GREETING[lang][role], rng.choice(CLOSING[lang])
    if kind == "off_topic":
        flaw, text = (
            "off_topic_answered",
            ("Sure! Here it is: the sea is wide and blue. " if lang == "en" else "Конечно! Вот: море широкое и синее. ")
            + close,
        )
    elif kind == "unanswerable":
        flaw, text = "guessed", f"{greet}, {HALLUCINATION[lang]} {close}"
    else:
        flaw = rng.choice(
            [
                "no_greeting",
                "wrong_form",
                "too_long",
                "list",
                "no_question",
                "wrong_language",
                "hallucination",
                "ai_self",
            ]
        )
        other_lang = "ru" if lang == "en" else "en"
        other_role = rng.choice([r for r in ROLES if r != role])
        ai = "As an AI, I can tell you that " if lang == "en" else "As an AI, скажу, что "
        text = {
            "no_greeting": f"{body[0].upper()}{body[1:]} {close}",
            "wrong_form": f"{GREETING[lang][other_role]}, {body} {close}",
            "too_long": f"{greet}, {body} {FILLER[lang]} {close}",
            "list": f"{greet}:\n- {body}\n- {close}",
            "no_question": f"{greet}, {body}",
            "wrong_language": f"{GREETING[other_lang][role]}, {DONT_KNOW[other_lang]} {rng.choice(CLOSING[other_lang])}",
            "hallucination": f"{greet}, {HALLUCINATION[lang]} {close}",
            "ai_self": f"{greet}, {ai}{body} {close}",
        }[flaw]
    return text, COMMENTS[flaw][0 if lang == "en" else 1]


def generate_logs(
    n_questions: int = 300,
    seed: int = 0,
    both_rate: float = 0.4,
    bad_only_rate: float = 0.15,
    ru_share: float = 0.4,
    kind_weights: dict[str, float] = KIND_WEIGHTS,
) -> list[dict[str, Any]]:
    """Log rows for `n_questions` sampled questions: a good answer for most, a bad one for some,
    both (a DPO pair) for `both_rate` of them. `kind`, `topic`, `group` and `lang` are kept as
    extra columns so tests and the demo's split can use the truth."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_questions):
        q = sample_question(rng, "ru" if rng.random() < ru_share else "en", kind_weights)
        body = q.pop("body")
        base = {**q, "contexts": list(q["contexts"])}
        r = rng.random()
        with_good, with_bad = r >= bad_only_rate, r < bad_only_rate + both_rate
        if with_good:
            rows.append(
                {
                    "id": f"q{i:04d}-good",
                    **base,
                    "answer": good_answer(q["kind"], q["lang"], q["role"], body, rng),
                    "label": "good",
                    "comment": "",
                }
            )
        if with_bad:
            text, comment = bad_answer(q["kind"], q["lang"], q["role"], body, rng)
            rows.append({"id": f"q{i:04d}-bad", **base, "answer": text, "label": "bad", "comment": comment})
    return rows
