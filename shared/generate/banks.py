"""Word banks the generator draws from: names, places, streets, email domains, products, review phrases.

Lists are ordered most common first; `zipf_weights` turns that order into a heavy-headed distribution, so
common names really are common (many John Smiths) and the tail gives variety. Everything here is made up or
generic; no real person's data.
"""
from __future__ import annotations

import itertools

COUNTRIES = ("GB", "US", "DE", "FR", "ES")
COUNTRY_WEIGHTS = (0.50, 0.15, 0.12, 0.12, 0.11)
CURRENCY = {"GB": "GBP", "US": "USD", "DE": "EUR", "FR": "EUR", "ES": "EUR"}
COUNTRY_NAMES = {  # how a CRM that stores country names spells them
    "GB": ("United Kingdom", "UK", "England", "Great Britain"),
    "US": ("United States", "USA", "U.S.A."),
    "DE": ("Germany", "Deutschland"),
    "FR": ("France",),
    "ES": ("Spain", "España"),
}

_EN_MALE = """James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew
Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan
Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Frank
Patrick Raymond Jack Dennis Jerry Tyler Aaron Henry Peter Oliver Harry Charlie Alfie Leo Freddie Archie Theodore
Arthur Liam Noah Ethan Lewis Callum Connor Declan Rhys Owen Gareth Nigel Graham Ian Neil Stuart Alistair""".split()
_EN_FEMALE = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret
Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura
Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel
Catherine Carolyn Janet Ruth Maria Heather Diane Virginia Julie Joyce Victoria Olivia Amelia Isla Ava Mia Isabella
Sophie Grace Lily Chloe Ella Poppy Evie Charlotte Alice Florence Hannah Lucy Megan Bethany Siobhan Niamh Gemma
Abigail Jacqueline Theresa Judith Frances Kathryn Louise Joanne Claire Zoe""".split()
_EN_FAMILY = """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson Wright
Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill Ward Morris
Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett Young
Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall
Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain
Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins
Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott Reynolds
Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton
O'Brien Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster
Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods Holland Stone Reid Hamilton McDonald MacLeod Fitzgerald
Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Nguyen Kim Johnston Sullivan""".split()

_DE_MALE = """Peter Michael Thomas Andreas Wolfgang Klaus Jürgen Stefan Christian Uwe Werner Frank Hans Bernd Markus
Matthias Jörg Sven Tobias Lukas Jonas Maximilian Felix Leon Björn Günter Horst Dieter Ralf Florian""".split()
_DE_FEMALE = """Sabine Monika Petra Andrea Ursula Renate Claudia Susanne Birgit Karin Julia Anna Lena Laura Katharina
Jana Sarah Lea Hannah Heike Brigitte Gisela Helga Ingrid Jutta Käthe Bärbel Sophie Marie Charlotte""".split()
_DE_FAMILY = """Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter
Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause
Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller
Weiß Jung Hahn Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht
Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel
Heinrich Brandt Haas""".split()

_FR_MALE = """Jean Pierre Michel André Philippe Louis Nicolas François Laurent Julien Sébastien Stéphane Frédéric
Olivier Thierry Christophe Éric David Alexandre Antoine Hugo Lucas Théo Mathéo Raphaël Gabriel Jérôme Loïc Hervé
Rémi""".split()
_FR_FEMALE = """Marie Nathalie Isabelle Sylvie Catherine Françoise Valérie Christine Monique Sophie Céline Sandrine
Aurélie Émilie Camille Léa Manon Chloé Inès Jade Louise Zoé Hélène Élodie Mélanie Stéphanie Agnès Cécile Noémie
Anaïs""".split()
_FR_FAMILY = """Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefèbvre Leroy
Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller Lefèvre Faure
André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin Clément Morin
Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Marie Lemaire Noël Meyer Dufour Meunier
Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martinez Gérard Roche Renard Schmitt Roy
Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas Lacroix Olivier Philippe Bourgeois Pierre
Benoît Rey Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez Jean Dupuy Guillot Hubert Berger Carpentier
Sánchez Dupuis Moulin Louis Deschamps Huet Vasseur Perez Boucher Fleury Royer Klein Jacquet Adam Paris Poirier
Marty Aubry Guyot Carré Charles Renault Charpentier Ménard Maillard Baron Bertin Bailly Hervé Schneider Fernandez
Le Gall Collet Léger Bouvier Julien Prévost Millet Perrot Daniel Le Roux Cousin Germain Breton Besson Langlois
Rémy Le Goff Pelletier Lévêque Perrier Leblanc Barré Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier
Michaud Rodriguez Guichard Gillet Étienne Grondin Poulain Tessier Chevallier Collin Chauvin Da Silva Bouchet Gay
Lemaître Bénard Maréchal Humbert Reynaud Antoine Hoarau Perret Barthélemy Cordier Pichon Lejeune Gilbert Lamy
Delaunay Pasquier Carlier Laporte""".split()

_ES_MALE = """Antonio José Manuel Francisco David Juan Javier Daniel Carlos Jesús Alejandro Miguel Rafael Pablo Pedro
Ángel Sergio Fernando Jorge Luis Alberto Álvaro Adrián Diego Raúl Iván Rubén Óscar Andrés Joaquín Ramón Íñigo""".split()
_ES_FEMALE = """María Carmen Ana Isabel Laura Cristina Marta Lucía Dolores Paula Elena Pilar Sara Rosa Raquel
Manuela Mercedes Beatriz Julia Silvia Nuria Irene Patricia Rocío Andrea Sofía Inés Begoña Verónica Noelia""".split()
_ES_FAMILY = """García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín Jiménez Ruiz Hernández
Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco
Molina Morales Suárez Ortega Delgado Castro Ortiz Rubio Marín Sanz Núñez Iglesias Medina Garrido Cortés Castillo
Santos Lozano Guerrero Cano Prieto Méndez Cruz Calvo Gallego Vidal León Márquez Herrera Peña Flores Cabrera
Campos Vega Fuentes Carrasco Diez Caballero Reyes Nieto Aguilar Pascual Santana Herrero Lorenzo Montero Hidalgo
Giménez Ibáñez Ferrer Durán Santiago Benítez Mora Vicente Vargas Arias Carmona Crespo Román Pastor Soto Sáez
Velasco Moya Soler Parra Esteban Bravo Gallardo Rojas""".split()

FIRST_NAMES = {  # (male, female)
    "GB": (_EN_MALE, _EN_FEMALE), "US": (_EN_MALE, _EN_FEMALE), "DE": (_DE_MALE, _DE_FEMALE),
    "FR": (_FR_MALE, _FR_FEMALE), "ES": (_ES_MALE, _ES_FEMALE),
}
FAMILY_NAMES = {"GB": _EN_FAMILY, "US": _EN_FAMILY, "DE": _DE_FAMILY, "FR": _FR_FAMILY, "ES": _ES_FAMILY}
# "Many John Smiths in one city": a few names per country forced onto a share of people in the biggest city.
COMMON_NAMES = {
    "GB": (("John", "Smith", "M"), ("David", "Jones", "M"), ("Sarah", "Williams", "F"), ("James", "Brown", "M")),
    "US": (("John", "Smith", "M"), ("Michael", "Johnson", "M"), ("Mary", "Smith", "F"), ("James", "Williams", "M")),
    "DE": (("Peter", "Müller", "M"), ("Sabine", "Schmidt", "F"), ("Thomas", "Schneider", "M")),
    "FR": (("Jean", "Martin", "M"), ("Marie", "Bernard", "F"), ("Pierre", "Dubois", "M")),
    "ES": (("José", "García", "M"), ("María", "Rodríguez", "F"), ("Antonio", "González", "M")),
}

# (city, state, postcode maker key, postcode prefixes); first city = biggest.
CITIES = {
    "GB": (("London", "Greater London", ("SW1A", "E1", "N1", "SE10", "W2", "NW3", "EC1V", "SW11")),
           ("Manchester", "Greater Manchester", ("M1", "M4", "M14", "M20")),
           ("Birmingham", "West Midlands", ("B1", "B5", "B15", "B29")),
           ("Leeds", "West Yorkshire", ("LS1", "LS6", "LS11")),
           ("Glasgow", "Glasgow City", ("G1", "G12", "G41")),
           ("Bristol", "Bristol", ("BS1", "BS6", "BS8")),
           ("Edinburgh", "City of Edinburgh", ("EH1", "EH3", "EH10")),
           ("Cardiff", "Cardiff", ("CF10", "CF11", "CF24")),
           ("Norwich", "Norfolk", ("NR1", "NR2")),
           ("York", "North Yorkshire", ("YO1", "YO10"))),
    "US": (("New York", "NY", ("100", "101", "112")), ("Los Angeles", "CA", ("900", "901")),
           ("Chicago", "IL", ("606",)), ("Houston", "TX", ("770",)), ("Phoenix", "AZ", ("850",)),
           ("Seattle", "WA", ("981",)), ("Boston", "MA", ("021",)), ("Denver", "CO", ("802",))),
    "DE": (("Berlin", "Berlin", ("10", "12", "13")), ("Hamburg", "Hamburg", ("20", "22")),
           ("München", "Bayern", ("80", "81")), ("Köln", "Nordrhein-Westfalen", ("50", "51")),
           ("Frankfurt am Main", "Hessen", ("60",)), ("Düsseldorf", "Nordrhein-Westfalen", ("40",))),
    "FR": (("Paris", "Île-de-France", ("750",)), ("Marseille", "Provence-Alpes-Côte d'Azur", ("130",)),
           ("Lyon", "Auvergne-Rhône-Alpes", ("690",)), ("Toulouse", "Occitanie", ("310",)),
           ("Nice", "Provence-Alpes-Côte d'Azur", ("060",)), ("Nantes", "Pays de la Loire", ("440",))),
    "ES": (("Madrid", "Madrid", ("280",)), ("Barcelona", "Cataluña", ("080",)), ("Valencia", "Valencia", ("460",)),
           ("Sevilla", "Andalucía", ("410",)), ("Zaragoza", "Aragón", ("500",)), ("Málaga", "Andalucía", ("290",))),
}

STREET_NAMES = {
    "GB": "High Church Station Victoria Green Manor Park Queens Kings Mill Windsor Albert Grange Springfield "
          "Richmond Oak Elm Cedar Willow Meadow Chestnut Highfield York Alexandra North South West".split(),
    "US": "Main Oak Maple Cedar Pine Elm Washington Lake Hill Park Sunset Lincoln Jackson Franklin Highland "
          "Madison Jefferson Walnut Spruce Ridge".split(),
    "DE": "Haupt Schul Garten Bahnhof Dorf Berg Kirch Wald Ring Linden Birken Buchen Wiesen Friedhof Mühlen "
          "Goethe Schiller Mozart Beethoven".split(),
    "FR": ["de la Paix", "Victor Hugo", "de la République", "Jean Jaurès", "Pasteur", "de la Gare", "du Moulin",
           "des Écoles", "Gambetta", "Voltaire", "de l'Église", "Nationale", "du Château", "des Lilas"],
    "ES": ["Mayor", "Real", "de la Iglesia", "del Sol", "Nueva", "de Cervantes", "San José", "de la Constitución",
           "del Carmen", "de Goya", "Gran Vía", "de Alcalá"],
}
# Street type: (full, abbreviations...). The generator writes the full form or an abbreviation.
STREET_TYPES = {
    "GB": (("Street", "St", "St."), ("Road", "Rd", "Rd."), ("Avenue", "Ave", "Av."), ("Lane", "Ln"),
           ("Drive", "Dr"), ("Close", "Cl"), ("Crescent", "Cres")),
    "US": (("Street", "St", "St."), ("Avenue", "Ave", "Ave."), ("Road", "Rd"), ("Boulevard", "Blvd"),
           ("Drive", "Dr"), ("Lane", "Ln"), ("Court", "Ct")),
    "DE": (("straße", "str.", "strasse"), ("weg",), ("allee",), ("platz", "pl.")),
    "FR": (("rue", "r."), ("avenue", "av.", "ave"), ("boulevard", "bd", "boul."), ("place", "pl.")),
    "ES": (("Calle", "C/", "c."), ("Avenida", "Avda.", "Av."), ("Paseo", "Pº"), ("Plaza", "Pza.")),
}
FLAT_WORDS = {"GB": ("Flat", "Apt"), "US": ("Apt", "Unit", "#"), "DE": ("Wohnung", "WE"),
              "FR": ("Appt", "Bât."), "ES": ("Piso", "Puerta")}

EMAIL_DOMAINS = {
    "GB": ("gmail.com", "hotmail.co.uk", "outlook.com", "yahoo.co.uk", "icloud.com", "btinternet.com", "sky.com"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "comcast.net"),
    "DE": ("gmail.com", "gmx.de", "web.de", "t-online.de", "outlook.de", "yahoo.de"),
    "FR": ("gmail.com", "orange.fr", "free.fr", "hotmail.fr", "laposte.net", "sfr.fr"),
    "ES": ("gmail.com", "hotmail.es", "yahoo.es", "outlook.es", "telefonica.net"),
}
PLUS_TAG_DOMAINS = frozenset({"gmail.com", "outlook.com", "outlook.de", "outlook.es", "icloud.com"})
PLACEHOLDER_EMAILS = ("test@test.com", "none@none.com", "noemail@noemail.com", "na@na.com", "no@email.com",
                      "N/A", "x@x.com")
PLACEHOLDER_PHONES = ("0000000000", "N/A", "1234567890", "00000", "-", "9999999999")
PLACEHOLDER_BIRTH_DATES = ("1900-01-01", "1970-01-01")

CATEGORIES = ("apparel", "footwear", "beauty", "home", "electronics", "grocery", "toys", "sports", "books",
              "garden")
CATEGORY_PRICE = {"apparel": 35.0, "footwear": 60.0, "beauty": 18.0, "home": 40.0, "electronics": 120.0,
                  "grocery": 12.0, "toys": 25.0, "sports": 45.0, "books": 14.0, "garden": 30.0}

REVIEW_PHRASES = {  # sentiment bucket -> phrases; a review text is 1-3 of them
    "negative": ("Terrible quality, fell apart after a week.", "Very disappointed.", "Would not buy again.",
                 "Arrived damaged and customer service was unhelpful.", "Waste of money.",
                 "Does not match the description at all.", "Awful fit, returned it.", "Poor value."),
    "neutral": ("It is okay for the price.", "Does the job.", "Average quality.", "Delivery was a bit slow.",
                "Not bad, not great.", "Fits as expected.", "Some minor issues but usable."),
    "positive": ("Love it!", "Excellent quality, highly recommend.", "Great value for money.",
                 "Fast delivery and well packaged.", "Exactly as described.", "Fantastic, will buy again.",
                 "Really happy with this purchase.", "Perfect fit and lovely colour."),
}


def zipf_weights(n: int, offset: float = 3.0) -> list[float]:
    """Cumulative weights for rank-ordered lists: rank r gets 1/(r + offset)."""
    return list(itertools.accumulate(1.0 / (r + offset) for r in range(n)))
